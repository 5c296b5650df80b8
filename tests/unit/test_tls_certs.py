"""The local CAs (payswitch.certs) and certificate identities (payswitch.tls).

Each test's certificate folder is ``tmp_path / "certs"``, so the CA folder beside it
(``tmp_path / "ca"``) is the test's own."""

from __future__ import annotations

import stat

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from payswitch import tls
from payswitch.certs import CaKeyConflict, CertDir, main, make_certs

SAN = tls.SAN_KEY


def _cert(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_make_certs_makes_every_file_with_private_keys_0600(tmp_path):
    root = tmp_path / "certs"
    made = make_certs(root, ["T-0001", "T-0002"], nodes=[("switch", "sw"), ("issuer", "bank")])
    d = CertDir(root)
    assert set(made) == {
        d.switch_dir.server.cert,
        d.switch_dir.network.cert,
        d.node_dir("bank").network.cert,
        d.probe.cert,
        d.admin.cert,
        d.operator.cert,
        d.terminal("T-0001").cert,
        d.terminal("T-0002").cert,
    }
    keys = list(tmp_path.rglob("*.key"))
    assert len(keys) == 11  # 8 leaves + 3 CAs
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    for folder in (root, tmp_path / "ca", d.switch_dir.root, d.node_dir("bank").root):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_ca_keys_are_kept_apart_and_each_process_folder_holds_only_its_own(tmp_path):
    root = tmp_path / "certs"
    make_certs(root, ["T-0001"], nodes=[("switch", "sw"), ("acquirer", "acq"), ("issuer", "bk")])
    assert sorted(p.name for p in (tmp_path / "ca").iterdir()) == [
        "admin-ca.key",
        "ca.key",
        "network-ca.key",
    ]
    assert not [p for p in root.rglob("*ca.key")]  # no CA key anywhere under the certs folder
    d = CertDir(root)
    assert sorted(p.name for p in d.switch_dir.root.iterdir()) == [
        "admin-ca.pem",
        "ca.pem",
        "network-ca.pem",
        "network.key",
        "network.pem",
        "switch.key",
        "switch.pem",
    ]
    assert sorted(p.name for p in d.node_dir("acq").root.iterdir()) == [
        "network-ca.pem",
        "network.key",
        "network.pem",
    ]
    node = _cert(d.node_dir("acq").network.cert)
    node.verify_directly_issued_by(_cert(d.network_ca.cert))
    sans = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        "urn:payswitch:node:acquirer:acq"
    ]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usage = node.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}


def test_a_ca_key_left_in_the_certs_folder_is_moved_out(tmp_path):
    root = tmp_path / "certs"
    make_certs(root, [])
    stray = root / "ca.key"
    (tmp_path / "ca" / "ca.key").rename(stray)  # the layout before the CA folder
    make_certs(root, ["T-0001"])
    assert not stray.exists()
    CertDir(root).terminal("T-0001")  # signed with the moved key:
    _cert(CertDir(root).terminal("T-0001").cert).verify_directly_issued_by(
        _cert(CertDir(root).ca.cert)
    )
    stray.write_bytes(b"another key")
    try:
        make_certs(root, [])
        raise AssertionError("two different CA keys were accepted")
    except CaKeyConflict:
        pass


def test_make_certs_is_idempotent_and_adds_only_new_terminals(tmp_path):
    tmp_path = tmp_path / "certs"
    make_certs(tmp_path, ["T-0001"])
    d = CertDir(tmp_path)
    ca_before = d.ca.cert.read_bytes()
    t1_before = d.terminal("T-0001").cert.read_bytes()
    assert make_certs(tmp_path, ["T-0001"]) == []
    assert make_certs(tmp_path, ["T-0001", "T-0009"]) == [d.terminal("T-0009").cert]
    assert d.ca.cert.read_bytes() == ca_before
    assert d.terminal("T-0001").cert.read_bytes() == t1_before


def test_terminal_cert_names_its_terminal_and_is_signed_by_the_terminal_ca(tmp_path):
    tmp_path = tmp_path / "certs"
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
    make_certs(tmp_path / "certs", [])
    cert = _cert(CertDir(tmp_path / "certs").switch_dir.server.cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_cli_makes_certificates_for_the_topology_terminals_and_nodes(tmp_path, capsys):
    tmp_path = tmp_path / "certs"
    main(["--topology", "topology/default.toml", "--dir", str(tmp_path)])
    for tid in ("T-0001", "T-0002", "T-0003"):
        assert CertDir(tmp_path).terminal(tid).cert.exists()
    # 3 terminals + switch, probe, admin, operator + the switch's and 8 nodes' network ones
    assert "16 new" in capsys.readouterr().out
    assert CertDir(tmp_path).terminal("T-0003").key.exists()
    assert CertDir(tmp_path).node_dir("bank-a").network.key.exists()
    main(["--topology", "topology/default.toml", "--dir", str(tmp_path)])
    assert "0 new" in capsys.readouterr().out  # idempotent


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


def test_network_identity_reads_exactly_one_node_or_operator_uri():
    node = b"urn:payswitch:node:scheme:visanet"
    assert tls.network_identity({SAN: [b"localhost", node]}) == ("scheme", "visanet")
    assert tls.network_identity({SAN: [b"urn:payswitch:operator:ops"]}) == ("operator", "ops")
    assert tls.network_identity({}) is None  # plaintext peer
    assert tls.network_identity({SAN: [node, b"urn:payswitch:node:issuer:bank-a"]}) is None
    assert tls.network_identity({SAN: [b"urn:payswitch:node:scheme"]}) is None
    assert tls.network_identity({SAN: [b"urn:payswitch:terminal:T-0001"]}) is None
    assert tls.network_identity({SAN: [b"urn:payswitch:admin:operator"]}) is None
