"""mTLS: gRPC credentials from a certificate directory (``payswitch.certs``), and the peer
identity a request arrives with. Three trust domains: terminals, the admin port, the network.

The terminal port requires a client certificate of the terminal CA, the admin port one of the
admin CA: a certificate of the other CA (or none) fails at the TLS handshake, before any RPC.
A terminal's identity is the SAN URI ``urn:payswitch:terminal:<id>`` of its certificate (the
CN carries the same id for people reading it; the switch trusts the URI only, and requires
exactly one). gRPC reports SANs in the auth context, so reading the identity costs a dict
lookup per request, never a certificate parse.

The network (switch -> acquirer -> scheme -> issuer, the back offices, fault control) trusts the
network CA only; a process's identity is its SAN URI ``urn:payswitch:node:<kind>:<id>`` (or
``urn:payswitch:operator:<name>`` for the network operator), read by ``network_identity``. Each
process is given its own folder (``CertDir.switch_dir``, ``CertDir.node_dir``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc

from payswitch import tracing
from payswitch.certs import (
    ADMIN_URI_PREFIX,
    NODE_URI_PREFIX,
    OPERATOR_URI_PREFIX,
    TERMINAL_URI_PREFIX,
    CertDir,
    Pair,
    node_dns_name,
)

SAN_KEY = "x509_subject_alternative_name"


def _read(pair: Pair) -> tuple[bytes, bytes]:
    return pair.key.read_bytes(), pair.cert.read_bytes()


def terminal_server_credentials(certs: str | Path) -> grpc.ServerCredentials:
    """The switch's terminal port: client certificate required, from the terminal CA."""
    d = CertDir(certs)
    return grpc.ssl_server_credentials(
        [_read(d.server)], root_certificates=d.ca.cert.read_bytes(), require_client_auth=True
    )


def admin_server_credentials(certs: str | Path) -> grpc.ServerCredentials:
    """The admin port: the same server certificate, clients only from the admin CA."""
    d = CertDir(certs)
    return grpc.ssl_server_credentials(
        [_read(d.server)], root_certificates=d.admin_ca.cert.read_bytes(), require_client_auth=True
    )


def network_server_credentials(process_dir: str | Path) -> grpc.ServerCredentials:
    """A network server (a node, in its own folder): its network certificate, and a client
    certificate of the network CA required; who may call what is ``network.authz``'s job."""
    d = CertDir(process_dir)
    return grpc.ssl_server_credentials(
        [_read(d.network)],
        root_certificates=d.network_ca.cert.read_bytes(),
        require_client_auth=True,
    )


def network_client_credentials(process_dir: str | Path) -> grpc.ChannelCredentials:
    """What a process (switch or node, from its own folder) dials its next hop with."""
    d = CertDir(process_dir)
    return client_credentials(d.network_ca.cert, d.network)


def operator_credentials(certs: str | Path) -> grpc.ChannelCredentials:
    """The network operator (fault control, book inspection, health checks of the nodes)."""
    d = CertDir(certs)
    return client_credentials(d.network_ca.cert, d.operator)


def node_credentials(certs: str | Path, kind: str, node_id: str) -> grpc.ChannelCredentials:
    """Node ``node_id``'s own network identity (tests impersonating a node use it)."""
    d = CertDir(certs)
    folder = d.switch_dir if kind == "switch" else d.node_dir(node_id)
    return client_credentials(d.network_ca.cert, folder.network)


def aio_channel(
    target: str,
    credentials: grpc.ChannelCredentials | None,
    options: Sequence[tuple[str, object]] = (),
    server: tuple[str, str] | None = None,
) -> grpc.aio.Channel:
    """An mTLS channel, or a plaintext one when ``credentials`` is None ([network] tls off).
    ``server``: (kind, id) of the node meant; its certificate must carry that node's DNS name
    (``payswitch.certs.node_dns_name``), or the handshake fails."""
    interceptors = tracing.client_interceptors() or None  # spans and traceparent, when on
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=list(options), interceptors=interceptors)
    opts = list(options)
    if server is not None:
        opts.append(("grpc.ssl_target_name_override", node_dns_name(*server)))
    return grpc.aio.secure_channel(target, credentials, options=opts, interceptors=interceptors)


def client_credentials(ca: Path, pair: Pair) -> grpc.ChannelCredentials:
    key, cert = _read(pair)
    return grpc.ssl_channel_credentials(ca.read_bytes(), key, cert)


def terminal_credentials(certs: str | Path, terminal_id: str) -> grpc.ChannelCredentials:
    """What terminal ``terminal_id`` dials the switch with (trusts the terminal CA)."""
    d = CertDir(certs)
    return client_credentials(d.ca.cert, d.terminal(terminal_id))


def probe_credentials(certs: str | Path) -> grpc.ChannelCredentials:
    """Health checks against the terminal port: passes the handshake, is no terminal."""
    d = CertDir(certs)
    return client_credentials(d.ca.cert, d.probe)


def admin_credentials(certs: str | Path) -> grpc.ChannelCredentials:
    """The operator's credentials for the admin port (the switch's certificate is checked
    against the terminal CA, which signed it)."""
    d = CertDir(certs)
    return client_credentials(d.ca.cert, d.admin)


def _uris(auth: Mapping[str, Sequence[bytes]], prefix: str) -> list[str]:
    out = []
    for raw in auth.get(SAN_KEY, ()):
        text = raw.decode("utf-8", "replace")
        if text.startswith(prefix):
            out.append(text[len(prefix) :])
    return out


def _one(auth: Mapping[str, Sequence[bytes]], prefix: str) -> str | None:
    found = _uris(auth, prefix)
    return found[0] if len(found) == 1 and found[0] else None


def terminal_identity(auth: Mapping[str, Sequence[bytes]]) -> str | None:
    """The terminal id of an authenticated peer (``context.auth_context()``); None when the
    certificate carries no terminal identity (or more than one)."""
    return _one(auth, TERMINAL_URI_PREFIX)


def admin_identity(auth: Mapping[str, Sequence[bytes]]) -> str | None:
    """The operator name of an admin peer, None when the certificate is not an admin's."""
    return _one(auth, ADMIN_URI_PREFIX)


def network_identity(auth: Mapping[str, Sequence[bytes]]) -> tuple[str, str] | None:
    """(kind, id) of a network peer: ``("acquirer", "acq-alpha")``, ``("switch", "switch-1")``,
    ``("operator", name)``; None unless its certificate carries exactly one such identity."""
    nodes = _uris(auth, NODE_URI_PREFIX)
    operators = _uris(auth, OPERATOR_URI_PREFIX)
    if len(nodes) + len(operators) != 1:
        return None
    if operators:
        return ("operator", operators[0]) if operators[0] else None
    kind, sep, node_id = nodes[0].partition(":")
    return (kind, node_id) if sep and kind and node_id else None
