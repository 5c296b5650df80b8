"""``payswitch-certs``: a local certificate authority for terminal mTLS (``make certs``).

    payswitch-certs [--topology F] [--dir .run/certs] [--terminal T-0009 ...]

Everything is made with the ``cryptography`` library (ECDSA P-256 keys, SHA-256 signatures),
idempotently: a file that exists is kept, so re-running only adds what the topology gained
(a new terminal). Private keys are written 0600. Layout under the directory:

- ``ca.pem``/``ca.key``: the terminal CA. It signs the switch's server certificate and one
  client certificate per terminal; the switch's terminal port trusts only this CA for clients.
- ``switch.pem``/``switch.key``: the switch's server certificate (SAN 127.0.0.1 and localhost),
  also presented on the admin port.
- ``terminals/<id>.pem``/``.key``: a terminal's client certificate. Identity: CN = terminal id
  and one SAN URI ``urn:payswitch:terminal:<id>``; the switch reads the URI (``payswitch.tls``).
- ``probe.pem``/``.key``: a client certificate of the terminal CA with no terminal identity
  (SAN URI ``urn:payswitch:probe``): health checks and monitoring pass the handshake, every
  terminal RPC refuses it.
- ``admin-ca.pem``/``.key`` and ``admin.pem``/``.key``: a separate CA for operators and its
  client certificate (SAN URI ``urn:payswitch:admin:<name>``). The admin port trusts only the
  admin CA, so a terminal certificate fails there at the handshake, and the terminal port
  refuses an admin certificate the same way.
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
PROBE_URI = "urn:payswitch:probe"
DEFAULT_DIR = Path(".run/certs")
CA_DAYS = 3650
LEAF_DAYS = 825


@dataclass(frozen=True, slots=True)
class Pair:
    """A certificate and its key, as file paths."""

    cert: Path
    key: Path


class CertDir:
    """The paths of one certificate directory (see the module docstring for the layout)."""

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
    def server(self) -> Pair:
        return self._pair("switch")

    @property
    def admin(self) -> Pair:
        return self._pair("admin")

    @property
    def probe(self) -> Pair:
        return self._pair("probe")

    def terminal(self, terminal_id: str) -> Pair:
        return self._pair(f"terminals/{terminal_id}")


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


def _ensure_ca(pair: Pair, cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
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


# The arguments of _ensure_leaf: files, issuing CA, common name, OU, SANs, extended key usage.
_LeafSpec: TypeAlias = tuple[
    Pair,
    tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    str,
    str,
    list[x509.GeneralName],
    x509.ObjectIdentifier,
]


def _ensure_leaf(
    pair: Pair,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    cn: str,
    ou: str,
    sans: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
) -> bool:
    """Make a leaf certificate unless it exists; True when made."""
    if pair.cert.exists() and pair.key.exists():
        return False
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(_name(cn, ou), ca_cert.subject, key.public_key(), LEAF_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
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


def make_certs(
    root: str | Path, terminal_ids: Iterable[str], admin_name: str = "operator"
) -> list[Path]:
    """Make every missing file of the directory; returns the certificates made."""
    d = CertDir(root)
    d.root.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    ca = _ensure_ca(d.ca, "payswitch terminal CA")
    admin_ca = _ensure_ca(d.admin_ca, "payswitch admin CA")
    server_sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    client = ExtendedKeyUsageOID.CLIENT_AUTH
    wanted: list[_LeafSpec] = [
        (d.server, ca, "switch", "switch", server_sans, ExtendedKeyUsageOID.SERVER_AUTH),
        (d.probe, ca, "probe", "probe", [x509.UniformResourceIdentifier(PROBE_URI)], client),
        (
            d.admin,
            admin_ca,
            admin_name,
            "admin",
            [x509.UniformResourceIdentifier(ADMIN_URI_PREFIX + admin_name)],
            client,
        ),
    ]
    for tid in terminal_ids:
        san: list[x509.GeneralName] = [x509.UniformResourceIdentifier(TERMINAL_URI_PREFIX + tid)]
        wanted.append((d.terminal(tid), ca, tid, "terminal", san, client))
    for pair, issuer, cn, ou, sans, usage in wanted:
        if _ensure_leaf(pair, issuer, cn, ou, sans, usage):
            made.append(pair.cert)
    return made


def main(argv: list[str] | None = None) -> None:
    from payswitch.world.topology import TopologyError, load

    p = argparse.ArgumentParser(prog="payswitch-certs", description=__doc__.splitlines()[0])
    p.add_argument("--topology", default=None, help="terminal certificates for its terminals")
    p.add_argument("--dir", default=str(DEFAULT_DIR), help="certificate directory (.run/certs)")
    p.add_argument("--terminal", action="append", default=[], help="also for this terminal id")
    args = p.parse_args(argv)
    ids = list(args.terminal)
    if args.topology:
        try:
            ids += [t.id for t in load(args.topology).terminals]
        except (OSError, TopologyError) as exc:
            sys.exit(f"payswitch-certs: {exc}")
    made = make_certs(args.dir, dict.fromkeys(ids))
    for path in made:
        print(f"made {path}")
    print(f"certificates in {args.dir}: {len(made)} new")


if __name__ == "__main__":
    main()
