"""Terminal and admin mTLS: gRPC credentials from a certificate directory (``payswitch.certs``),
and the peer identity a request arrives with.

The terminal port requires a client certificate of the terminal CA, the admin port one of the
admin CA: a certificate of the other CA (or none) fails at the TLS handshake, before any RPC.
A terminal's identity is the SAN URI ``urn:payswitch:terminal:<id>`` of its certificate (the
CN carries the same id for people reading it; the switch trusts the URI only, and requires
exactly one). gRPC reports SANs in the auth context, so reading the identity costs a dict
lookup per request, never a certificate parse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc

from payswitch.certs import ADMIN_URI_PREFIX, TERMINAL_URI_PREFIX, CertDir, Pair

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
