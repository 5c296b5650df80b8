"""``payswitch-certs``: the local certificate authorities for mTLS (``make certs``).

    payswitch-certs [--topology F] [--dir .run/certs] [--ca-dir .run/ca] [--terminal T-0009 ...]

Everything is made with the ``cryptography`` library (ECDSA P-256 keys, SHA-256 signatures),
idempotently: a file that exists is kept, so re-running only adds what the topology gained
(a new terminal, a new node). Private keys are written 0600, folders 0700.

Three CAs, one per trust domain, so a credential of one domain fails the handshake of another:
the terminal CA (terminals and the switch's terminal port), the admin CA (operators at the
admin port), the network CA (the switch and every network node, and the network operator).
Their private keys live in the CA folder (``--ca-dir``, default ``ca`` beside ``--dir``), which
no process is ever given; ``--dir`` holds only certificates and the keys processes run with:

- ``ca.pem``, ``admin-ca.pem``, ``network-ca.pem``: the three CA certificates.
- ``switch/``: everything the switch process gets (``--certs-dir``), nothing more: its server
  certificate ``switch.pem``/``.key`` (SAN 127.0.0.1 and localhost; terminal and admin ports),
  its network identity ``network.pem``/``.key`` (``urn:payswitch:node:switch:<id>``; it dials
  the acquirers and runs the settlement calls with it), and the CA certificates it verifies
  peers against (``ca.pem``, ``admin-ca.pem``, ``network-ca.pem``).
- ``nodes/<id>/``: what network node ``<id>`` gets: ``network.pem``/``.key`` (SAN URI
  ``urn:payswitch:node:<kind>:<id>``, DNS ``<id>.<kind>.payswitch``, 127.0.0.1/localhost: it
  serves and dials with it) and ``network-ca.pem``. A caller checks the node's certificate
  against that DNS name, so it talks to the node it meant.
- ``terminals/<id>.pem``/``.key``: a terminal's client certificate (terminal CA). Identity:
  one SAN URI ``urn:payswitch:terminal:<id>`` (the CN repeats it for people).
- ``probe.pem``/``.key``: terminal CA, no terminal identity (``urn:payswitch:probe``): health
  checks pass the handshake, every terminal RPC refuses it.
- ``admin.pem``/``.key``: the operator at the admin port (admin CA, ``urn:payswitch:admin:<n>``).
- ``operator.pem``/``.key``: the network operator (network CA, ``urn:payswitch:operator:<n>``):
  fault control, book inspection and health checks of the nodes.

A CA key found in ``--dir`` (the layout before the CA folder existed) is moved to the CA folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TERMINAL_URI_PREFIX = "urn:payswitch:terminal:"
ADMIN_URI_PREFIX = "urn:payswitch:admin:"
NODE_URI_PREFIX = "urn:payswitch:node:"
OPERATOR_URI_PREFIX = "urn:payswitch:operator:"
PROBE_URI = "urn:payswitch:probe"
DEFAULT_DIR = Path(".run/certs")
CA_DAYS = 3650
LEAF_DAYS = 825
_CA_NAMES = ("ca", "admin-ca", "network-ca")


def node_uri(kind: str, node_id: str) -> str:
    """The network identity of a node (``kind``: switch, acquirer, scheme or issuer)."""
    return f"{NODE_URI_PREFIX}{kind}:{node_id}"


def node_dns_name(kind: str, node_id: str) -> str:
    """The DNS name a node's certificate carries besides 127.0.0.1: a caller dialling that
    node checks the server's certificate against it (``payswitch.tls.aio_channel``), so it
    reaches the node it meant and not another node's process on that port."""
    return f"{node_id}.{kind}.payswitch"


@dataclass(frozen=True, slots=True)
class Pair:
    """A certificate and its key, as file paths."""

    cert: Path
    key: Path


class CertDir:
    """The paths of one certificate directory (see the module docstring for the layout); a
    process's own folder (``switch_dir``, ``node_dir``) has the same names for what it holds."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _pair(self, name: str) -> Pair:
        return Pair(self.root / f"{name}.pem", self.root / f"{name}.key")

    @property
    def ca(self) -> Pair:
        return self._pair("ca")

    @property
    def admin_ca(self) -> Pair:
        return self._pair("admin-ca")

    @property
    def network_ca(self) -> Pair:
        return self._pair("network-ca")

    @property
    def server(self) -> Pair:
        return self._pair("switch")

    @property
    def network(self) -> Pair:
        """This process's network identity (a process folder only)."""
        return self._pair("network")

    @property
    def admin(self) -> Pair:
        return self._pair("admin")

    @property
    def probe(self) -> Pair:
        return self._pair("probe")

    @property
    def operator(self) -> Pair:
        return self._pair("operator")

    def terminal(self, terminal_id: str) -> Pair:
        return self._pair(f"terminals/{terminal_id}")

    @property
    def switch_dir(self) -> CertDir:
        """The folder the switch process is given."""
        return CertDir(self.root / "switch")

    def node_dir(self, node_id: str) -> CertDir:
        """The folder network node ``node_id`` is given."""
        return CertDir(self.root / "nodes" / node_id)


def default_ca_dir(certs: str | Path) -> Path:
    """The CA folder beside a certificate folder (``.run/certs`` -> ``.run/ca``)."""
    return Path(certs).resolve().parent / "ca"


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)  # an existing file keeps its mode under O_CREAT


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _load(pair: Pair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def _name(cn: str, ou: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "payswitch"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


class CaKeyConflict(RuntimeError):
    """A CA key in the certificate folder differs from the CA folder's: an operator decides."""


def _move_stray_key(stray: Path, key: Path) -> None:
    """A CA key left in the certificate folder (older layout) goes to the CA folder."""
    if not stray.exists():
        return
    if not key.exists():
        os.replace(stray, key)
    elif stray.read_bytes() == key.read_bytes():
        stray.unlink()
    else:
        raise CaKeyConflict(f"{stray} differs from {key}: remove one of them")


def _ensure_ca(pair: Pair, cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA of ``pair`` (certificate in the certificate folder, key in the CA folder)."""
    _move_stray_key(pair.cert.with_suffix(".key"), pair.key)
    if pair.cert.exists() and pair.key.exists():
        return _load(pair)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(cn, "ca")
    cert = (
        _builder(name, name, key.public_key(), CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(pair.key, key)
    _write_cert(pair.cert, cert)
    return cert, key


_Ca: TypeAlias = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
# The arguments of _ensure_leaf: files, issuing CA, common name, OU, SANs, extended key usages.
_LeafSpec: TypeAlias = tuple[
    Pair, _Ca, str, str, list[x509.GeneralName], list[x509.ObjectIdentifier]
]


def _ensure_leaf(
    pair: Pair,
    ca: _Ca,
    cn: str,
    ou: str,
    sans: list[x509.GeneralName],
    usages: list[x509.ObjectIdentifier],
) -> bool:
    """Make a leaf certificate unless it exists; True when made."""
    if pair.cert.exists() and pair.key.exists():
        return False
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(_name(cn, ou), ca_cert.subject, key.public_key(), LEAF_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(pair.key, key)
    _write_cert(pair.cert, cert)
    return True


def _copy_cert(source: Path, target: Path) -> None:
    """A CA certificate into a process folder (rewritten only when it differs)."""
    data = source.read_bytes()
    if not target.exists() or target.read_bytes() != data:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def make_certs(
    root: str | Path,
    terminal_ids: Iterable[str],
    admin_name: str = "operator",
    *,
    nodes: Iterable[tuple[str, str]] = (),
    ca_dir: str | Path | None = None,
) -> list[Path]:
    """Make every missing file of the directory; returns the certificates made.

    ``nodes``: (kind, id) of the switch and every network node (``payswitch.world.topology
    .network_identities``), each given its own process folder. ``ca_dir``: where the CA keys
    are kept (default: ``ca`` beside ``root``); never inside ``root``.
    """
    d = CertDir(root)
    _private_dir(d.root)
    keys = Path(ca_dir) if ca_dir is not None else default_ca_dir(d.root)
    if keys.resolve().is_relative_to(d.root.resolve()):
        raise ValueError(f"CA folder {keys} must not be inside {d.root}")
    _private_dir(keys)
    made: list[Path] = []

    def ca_pair(name: str) -> Pair:
        return Pair(d.root / f"{name}.pem", keys / f"{name}.key")

    ca = _ensure_ca(ca_pair("ca"), "payswitch terminal CA")
    admin_ca = _ensure_ca(ca_pair("admin-ca"), "payswitch admin CA")
    network_ca = _ensure_ca(ca_pair("network-ca"), "payswitch network CA")
    loopback: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    client = [ExtendedKeyUsageOID.CLIENT_AUTH]
    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    sw = d.switch_dir
    wanted: list[_LeafSpec] = [
        (sw.server, ca, "switch", "switch", loopback, [ExtendedKeyUsageOID.SERVER_AUTH]),
        (d.probe, ca, "probe", "probe", [x509.UniformResourceIdentifier(PROBE_URI)], client),
        (
            d.admin,
            admin_ca,
            admin_name,
            "admin",
            [x509.UniformResourceIdentifier(ADMIN_URI_PREFIX + admin_name)],
            client,
        ),
        (
            d.operator,
            network_ca,
            admin_name,
            "operator",
            [x509.UniformResourceIdentifier(OPERATOR_URI_PREFIX + admin_name)],
            client,
        ),
    ]
    for tid in terminal_ids:
        san: list[x509.GeneralName] = [x509.UniformResourceIdentifier(TERMINAL_URI_PREFIX + tid)]
        wanted.append((d.terminal(tid), ca, tid, "terminal", san, client))
    for kind, node_id in nodes:
        folder = sw if kind == "switch" else d.node_dir(node_id)
        names: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(node_uri(kind, node_id)),
            x509.DNSName(node_dns_name(kind, node_id)),
        ]
        wanted.append((folder.network, network_ca, node_id, kind, names + loopback, both))
    for pair, issuer, cn, ou, sans, usages in wanted:
        _private_dir(pair.cert.parent)
        if _ensure_leaf(pair, issuer, cn, ou, sans, usages):
            made.append(pair.cert)
    # Each process folder: its own key pair(s) and the CA certificates it verifies peers with.
    _copy_cert(d.ca.cert, sw.ca.cert)
    _copy_cert(d.admin_ca.cert, sw.admin_ca.cert)
    for folder in [sw, *(d.node_dir(i) for k, i in nodes if k != "switch")]:
        _copy_cert(d.network_ca.cert, folder.network_ca.cert)
    return made


def main(argv: list[str] | None = None) -> None:
    from payswitch.world.topology import TopologyError, load, network_identities

    p = argparse.ArgumentParser(prog="payswitch-certs", description=__doc__.splitlines()[0])
    p.add_argument("--topology", default=None, help="certificates for its terminals and nodes")
    p.add_argument("--dir", default=str(DEFAULT_DIR), help="certificate directory (.run/certs)")
    p.add_argument("--ca-dir", default=None, help="CA private keys (default: ca beside --dir)")
    p.add_argument("--terminal", action="append", default=[], help="also for this terminal id")
    args = p.parse_args(argv)
    ids = list(args.terminal)
    nodes: list[tuple[str, str]] = []
    if args.topology:
        try:
            topology = load(args.topology)
        except (OSError, TopologyError) as exc:
            sys.exit(f"payswitch-certs: {exc}")
        ids += [t.id for t in topology.terminals]
        nodes = network_identities(topology)
    try:
        made = make_certs(args.dir, dict.fromkeys(ids), nodes=nodes, ca_dir=args.ca_dir)
    except (CaKeyConflict, ValueError) as exc:
        sys.exit(f"payswitch-certs: {exc}")
    for path in made:
        print(f"made {path}")
    print(f"certificates in {args.dir}: {len(made)} new")


if __name__ == "__main__":
    main()
