"""The local CA (payswitch.certs) and certificate identities (payswitch.tls)."""

from __future__ import annotations

import stat

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from payswitch import tls
from payswitch.certs import CertDir, main, make_certs

SAN = tls.SAN_KEY


def _cert(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_make_certs_makes_every_file_with_private_keys_0600(tmp_path):
    made = make_certs(tmp_path, ["T-0001", "T-0002"])
    d = CertDir(tmp_path)
    assert set(made) == {
        d.server.cert,
        d.probe.cert,
        d.admin.cert,
        d.terminal("T-0001").cert,
        d.terminal("T-0002").cert,
    }
    for key in tmp_path.rglob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_make_certs_is_idempotent_and_adds_only_new_terminals(tmp_path):
    make_certs(tmp_path, ["T-0001"])
    d = CertDir(tmp_path)
    ca_before = d.ca.cert.read_bytes()
    t1_before = d.terminal("T-0001").cert.read_bytes()
    assert make_certs(tmp_path, ["T-0001"]) == []
    assert make_certs(tmp_path, ["T-0001", "T-0009"]) == [d.terminal("T-0009").cert]
    assert d.ca.cert.read_bytes() == ca_before
    assert d.terminal("T-0001").cert.read_bytes() == t1_before


def test_terminal_cert_names_its_terminal_and_is_signed_by_the_terminal_ca(tmp_path):
    make_certs(tmp_path, ["T-0001"])
    d = CertDir(tmp_path)
    cert = _cert(d.terminal("T-0001").cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "T-0001"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        "urn:payswitch:terminal:T-0001"
    ]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    cert.verify_directly_issued_by(_cert(d.ca.cert))
    admin = _cert(d.admin.cert)
    admin.verify_directly_issued_by(_cert(d.admin_ca.cert))
    assert admin.issuer != cert.issuer  # a separate CA: the ports tell them apart


def test_server_cert_covers_loopback_names(tmp_path):
    make_certs(tmp_path, [])
    cert = _cert(CertDir(tmp_path).server.cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_cli_makes_certificates_for_the_topology_terminals(tmp_path, capsys):
    main(["--topology", "topology/default.toml", "--dir", str(tmp_path)])
    for tid in ("T-0001", "T-0002", "T-0003"):
        assert CertDir(tmp_path).terminal(tid).cert.exists()
    assert "6 new" in capsys.readouterr().out  # 3 terminals + switch, probe, admin
    assert CertDir(tmp_path).terminal("T-0003").key.exists()


def test_terminal_identity_reads_exactly_one_terminal_uri():
    uri = b"urn:payswitch:terminal:T-0001"
    assert tls.terminal_identity({SAN: [uri]}) == "T-0001"
    assert tls.terminal_identity({SAN: [b"localhost", uri]}) == "T-0001"
    assert tls.terminal_identity({}) is None  # plaintext peer
    assert tls.terminal_identity({SAN: [b"urn:payswitch:probe"]}) is None
    assert tls.terminal_identity({SAN: [uri, b"urn:payswitch:terminal:T-0002"]}) is None
    assert tls.terminal_identity({SAN: [b"urn:payswitch:terminal:"]}) is None
    # The CN alone is not an identity: only the URI counts.
    assert tls.terminal_identity({"x509_common_name": [b"T-0001"]}) is None


def test_admin_identity_is_not_a_terminal_identity():
    admin = {SAN: [b"urn:payswitch:admin:operator"]}
    assert tls.admin_identity(admin) == "operator"
    assert tls.terminal_identity(admin) is None
    assert tls.admin_identity({SAN: [b"urn:payswitch:terminal:T-0001"]}) is None
