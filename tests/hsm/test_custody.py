"""Key custody on real SoftHSM: one token per party, PINs, key blocks, the KIF.

The ceremony and the KIF run as processes of their own on a fresh HSM home (``custody_home``),
as a custodian would run them; the key-block tests run in this process on two parties' own
tokens of the session's HSM home.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC

from hsm import exchange, keyblock
from hsm.config import HOME_ENV, pin_path
from hsm.errors import HsmError
from hsm.keys import KeySpec
from hsm.pool import HsmPool
from hsm.provision import ensure_tokens
from hsm.testing import party_config
from terminals.secure_element import SecureElement

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "topology" / "default.toml"
PARTIES = ("switch", "kif", "acq-alpha", "acq-beta", "bank-a", "bank-b", "bank-c")
_LINE = re.compile(r"^\s*(?:new)?\s+(\S+/\S+/v\d+)\s+\S+\s+\d+\s+KCV (\S+)", re.MULTILINE)


def _run(
    home: Path, *argv: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "PAYSWITCH_HSM_DEV")
    }
    environ.update({HOME_ENV: str(home), **env})
    return subprocess.run(
        [sys.executable, *argv],
        env=environ,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def custody_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh HSM home after `payswitch-hsm keys` for the default topology (own process)."""
    home = tmp_path_factory.mktemp("custody")
    out = _run(home, "-m", "payswitch.ceremony", "keys", "--topology", str(TOPOLOGY))
    assert out.returncode == 0, out.stderr
    return home


def _listed(home: Path, party: str) -> dict[str, str]:
    out = _run(home, "-m", "payswitch.ceremony", "list", "--party", party)
    assert out.returncode == 0, out.stderr
    return dict(_LINE.findall(out.stdout))


def test_each_party_has_its_own_token_and_pins(custody_home: Path) -> None:
    pins = custody_home / "pins"
    assert oct(pins.stat().st_mode & 0o777) == "0o700"
    values = set()
    for party in PARTIES:
        for path in (pins / f"{party}.pin", pins / f"{party}.so-pin"):
            assert oct(path.stat().st_mode & 0o777) == "0o600", path
            values.add(path.read_text().strip())
    assert len(values) == 2 * len(PARTIES)  # every PIN different
    assert not values & {"1234", "5678"}
    for party in PARTIES:
        labels = _listed(custody_home, party)
        assert labels, party
        assert all(label.startswith(f"{party}/") for label in labels), (party, labels)


def test_kcvs_of_both_sides_match_after_the_exchange(custody_home: Path) -> None:
    listed = {party: _listed(custody_home, party) for party in PARTIES}
    pairs = [
        (("switch", "switch/bdk/v1"), ("kif", "kif/bdk.switch/v1")),
        (("switch", "switch/zpk.acq-alpha/v1"), ("acq-alpha", "acq-alpha/zpk.switch/v1")),
        (("acq-beta", "acq-beta/zpk.bank-c/v1"), ("bank-c", "bank-c/zpk.acq-beta/v1")),
        (("switch", "switch/kek.kif/v1"), ("kif", "kif/kek.switch/v1")),
        (("acq-alpha", "acq-alpha/kek.bank-a/v1"), ("bank-a", "bank-a/kek.acq-alpha/v1")),
    ]
    for (pa, la), (pb, lb) in pairs:
        assert listed[pa][la] == listed[pb][lb], (la, lb)
    assert listed["switch"]["switch/zpk.acq-alpha/v1"] != listed["switch"]["switch/zpk.acq-beta/v1"]
    # A second run changes nothing: every key present on both sides, KCVs equal.
    again = _run(custody_home, "-m", "payswitch.ceremony", "keys", "--topology", str(TOPOLOGY))
    assert again.returncode == 0, again.stderr
    assert "0 key(s) created" in again.stdout


def test_one_party_pin_does_not_open_another_party_token(custody_home: Path) -> None:
    code = (
        "from hsm.config import HsmConfig; from hsm.pool import HsmPool, _ping\n"
        "own = HsmConfig.for_party('acq-alpha')\n"
        "HsmPool(HsmConfig(conf=own.conf, token='bank-a', pin=own.pin)).run_sync(_ping)\n"
    )
    out = _run(custody_home, "-c", code)
    assert out.returncode != 0
    assert "PinIncorrect" in out.stderr
    pin = pin_path(custody_home, "acq-alpha").read_text().strip()
    assert pin not in out.stderr + out.stdout


def test_a_default_pin_is_refused_outside_development_mode(custody_home: Path) -> None:
    pins = custody_home / "pins"
    (pins / "devbox.pin").write_text("1234\n")
    (pins / "devbox.pin").chmod(0o600)
    ensure_tokens(custody_home, ["devbox"])  # a token whose user PIN is 1234
    code = (
        "from hsm.config import HsmConfig; from hsm.pool import HsmPool, _ping\n"
        "print(HsmPool(HsmConfig.for_party('devbox')).run_sync(_ping))\n"
    )
    refused = _run(custody_home, "-c", code)
    assert refused.returncode != 0
    assert "well-known default PIN: refusing to start" in refused.stderr
    dev = _run(custody_home, "-c", code, PAYSWITCH_HSM_DEV="1")
    assert dev.returncode == 0, dev.stderr
    assert dev.stdout.strip().endswith("True")  # logged in
    assert "WARNING: DEVELOPMENT MODE" in dev.stderr  # loudly: on stderr ...
    assert re.search(r"\[warning\s*\] hsm_default_pin .*party=devbox", dev.stdout)  # ... and logged
    # The switch process itself, given that PIN file, does not start.
    switch = _run(
        custody_home,
        "-m",
        "switch.app.main",
        "--topology",
        str(TOPOLOGY),
        "--store",
        f"sqlite:///{custody_home / 'never.db'}",
        "--hsm-pin-file",
        str(pins / "devbox.pin"),
    )
    assert switch.returncode != 0
    assert "well-known default PIN" in switch.stderr


def test_a_pin_file_others_can_read_is_refused(custody_home: Path, tmp_path: Path) -> None:
    loose = tmp_path / "loose.pin"
    loose.write_text(pin_path(custody_home, "switch").read_text())
    loose.chmod(0o644)
    code = (
        "from hsm.config import HsmConfig\n"
        f"HsmConfig.for_party('switch', pin_file={str(loose)!r})\n"
    )
    out = _run(custody_home, "-c", code)
    assert out.returncode != 0 and "readable by others" in out.stderr


def test_softhsm_wrapping_mechanisms_are_as_documented(hsm_pool) -> None:
    """What hsm/keyblock.py and hsm/exchange.py rely on, and why they differ from TR-31/TR-34:
    AES key wrap (with and without padding) and RSA-OAEP with SHA-1 work; AES-CBC and AES-ECB
    are refused as wrapping mechanisms, and so is RSA-OAEP with SHA-256."""
    from pkcs11 import MGF, Attribute, KeyType, Mechanism
    from pkcs11 import exceptions as px

    def job(session):
        tpl = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True, Attribute.WRAP: True}
        kek = session.generate_key(KeyType.AES, 256, store=False, template=tpl)
        key = session.generate_key(KeyType.DES2, store=False, template=tpl)
        pub, priv = session.generate_keypair(KeyType.RSA, 2048, store=False)
        out = {}
        try:
            for mech in (
                Mechanism.AES_KEY_WRAP,
                Mechanism.AES_KEY_WRAP_PAD,
                Mechanism.AES_CBC_PAD,
                Mechanism.AES_ECB,
            ):
                try:
                    out[mech.name] = len(kek.wrap_key(key, mechanism=mech))
                except px.MechanismInvalid:
                    out[mech.name] = "refused"
            for name, param in (
                ("OAEP_SHA1", (Mechanism.SHA_1, MGF.SHA1, None)),
                ("OAEP_SHA256", (Mechanism.SHA256, MGF.SHA256, None)),
            ):
                try:
                    wrapped = pub.wrap_key(
                        kek, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=param
                    )
                    out[name] = len(wrapped)
                except (px.ArgumentsBad, px.MechanismParamInvalid):
                    out[name] = "refused"
        finally:
            for obj in (kek, key, pub, priv):
                obj.destroy()
        return out

    assert hsm_pool.run_sync(job) == {
        "AES_KEY_WRAP": 24,
        "AES_KEY_WRAP_PAD": 24,
        "AES_CBC_PAD": "refused",
        "AES_ECB": "refused",
        "OAEP_SHA1": 256,
        "OAEP_SHA256": "refused",
    }


# --- key blocks, in this process, on two parties' own tokens -------------------------------


@pytest.fixture(scope="module")
def two_parties(hsm_config) -> tuple[HsmPool, HsmPool]:
    """The KIF's and acq-beta's own tokens of the session's HSM home, with their KEK agreed: a
    pair of parties the topology's ceremony never pairs, so a stack that ran the ceremony in
    this process's HSM home earlier has left none of these labels behind."""
    sender, receiver = HsmPool(party_config("kif")), HsmPool(party_config("acq-beta"))
    exchange.establish_kek(sender, "kif", receiver, "acq-beta")
    return sender, receiver


def _tamper(block: str, pos: int, char: str) -> str:
    assert block[pos] != char
    return block[:pos] + char + block[pos + 1 :]


def test_a_key_block_with_a_tampered_header_is_refused(two_parties) -> None:
    sender, receiver = two_parties
    spec = KeySpec("kif", "zpk.acq-beta", peer="acq-beta")
    sent, block = sender.run_sync(exchange.send_key, spec)
    assert block.startswith("1") and block[5:12] == "P0AB01N"
    assert sent.kcv in block  # the KC optional block: a KCV, not the key
    peer_label = "acq-beta/zpk.kif/v1"
    for bad in (
        _tamper(block, 8, "E"),  # mode of use B -> E
        _tamper(block, 11, "E"),  # exportability N -> E
        _tamper(block, 5, "D"),  # usage P0 -> D0
        _tamper(block, len(block) - 40, "0" if block[-40] != "0" else "1"),  # wrapped key
    ):
        with pytest.raises(keyblock.KeyBlockError, match="MAC does not verify"):
            receiver.run_sync(exchange.receive_key, spec, bad)
        assert receiver.run_sync(exchange.info_or_none, peer_label) is None
    got = receiver.run_sync(exchange.receive_key, spec, block)
    assert (got.label, got.kcv) == (peer_label, sent.kcv)
    assert got.capabilities == ("E", "D")


def test_a_key_block_for_another_usage_is_refused(two_parties) -> None:
    sender, receiver = two_parties
    # A genuine, correctly MACed block of a BDK, offered where a PIN verification key is due.
    _info, bdk_block = sender.run_sync(exchange.send_key, KeySpec("kif", "bdk", peer="acq-beta"))
    pvk_spec = KeySpec("kif", "pvk", peer="acq-beta")
    with pytest.raises(keyblock.KeyBlockError, match="B0AX01N is not the expected V0AG01N"):
        receiver.run_sync(exchange.receive_key, pvk_spec, bdk_block)
    assert receiver.run_sync(exchange.info_or_none, "acq-beta/pvk.kif/v1") is None
    # A block whose MAC is off by one bit is refused before anything else is read.
    bad_mac = bdk_block[:-1] + ("0" if bdk_block[-1] != "0" else "1")
    bdk_spec = KeySpec("kif", "bdk", peer="acq-beta")
    with pytest.raises(keyblock.KeyBlockError, match="MAC does not verify"):
        receiver.run_sync(exchange.receive_key, bdk_spec, bad_mac)
    assert receiver.run_sync(exchange.info_or_none, "acq-beta/bdk.kif/v1") is None
    assert receiver.run_sync(exchange.receive_key, bdk_spec, bdk_block).label == (
        "acq-beta/bdk.kif/v1"
    )


def test_issuer_keys_shared_for_stand_in_go_the_same_way(two_parties) -> None:
    """Any KeySpec with a peer is exchanged generically (a PVK, an IMK-AC); a CVK pair goes as
    two blocks, K_A||K_B and its K_A||K_A companion, both sealed at their birth."""
    sender, receiver = two_parties
    for purpose, caps in (("pvk", ("S",)), ("imk-ac", ("X",))):
        sent, got = exchange.share(sender, receiver, KeySpec("kif", purpose, peer="acq-beta"))
        assert got.label == f"acq-beta/{purpose}.kif/v1"
        assert sent.kcv == got.kcv and got.capabilities == caps
    infos = exchange.share(sender, receiver, KeySpec("kif", "cvk", peer="acq-beta"))
    by_label = {i.label: i for i in infos}
    for name in ("cvk", "cvk-a"):
        mine, theirs = by_label[f"kif/{name}/v1"], by_label[f"acq-beta/{name}.kif/v1"]
        assert mine.kcv == theirs.kcv and theirs.capabilities == ("E",)
    assert by_label["kif/cvk/v1"].kcv != by_label["kif/cvk-a/v1"].kcv  # K_A||K_B is not K_A||K_A
    # Idempotent: shared already, nothing is made again.
    again = exchange.share(sender, receiver, KeySpec("kif", "cvk", peer="acq-beta"))
    assert {i.label: i.kcv for i in again} == {i.label: i.kcv for i in infos}
    with pytest.raises(HsmError, match="shared with its pair"):
        exchange.share(sender, receiver, KeySpec("kif", "cvk-a", peer="acq-beta"))


# --- the key-injection facility ------------------------------------------------------------


def _public(se: SecureElement) -> str:
    modulus, exponent = se.transport_public_key()
    return json.dumps({"modulus": modulus.hex(), "exponent": exponent.hex()})


def test_the_kif_wraps_an_initial_key_only_for_a_registered_device(custody_home: Path) -> None:
    se = SecureElement()
    public = _public(se)
    kif = ("-m", "kif.main")
    audit = custody_home / "kif" / "audit.log"
    unknown = _run(
        custody_home, *kif, "inject", "--terminal", "T-0001", "--ikid", "0000000112345678",
        "--operator", "alice", stdin=public,
    )  # fmt: skip
    assert unknown.returncode == 1 and "not registered" in unknown.stderr
    assert unknown.stdout == ""
    reg = _run(custody_home, *kif, "register", "--terminal", "T-0002", "--operator", "alice")
    assert reg.returncode == 0, reg.stderr
    ikid = json.loads(reg.stdout)["ikid"]
    foreign = _run(
        custody_home, *kif, "inject", "--terminal", "T-0001", "--ikid", ikid,
        "--operator", "mallory", stdin=public,
    )  # fmt: skip
    assert foreign.returncode == 1 and "not registered to T-0001" in foreign.stderr
    assert "inject" not in audit.read_text()  # nothing wrapped, nothing logged as injected
    ok = _run(
        custody_home, *kif, "inject", "--terminal", "T-0002", "--ikid", ikid,
        "--operator", "alice", stdin=public,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    answer = json.loads(ok.stdout)
    se.load_initial_key(bytes.fromhex(answer["ikid"]), bytes.fromhex(answer["wrapped"]))
    cmac = CMAC(algorithms.AES(se._ik))
    cmac.update(bytes(16))
    assert answer["kcv"] == cmac.finalize()[:3].hex().upper()  # the IK the device now holds
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    injected = [line for line in lines if line["event"] == "inject"]
    assert injected == [
        {
            "at": injected[0]["at"],
            "event": "inject",
            "operator": "alice",
            "terminal_id": "T-0002",
            "ikid": ikid,
            "kcv": answer["kcv"],
        }
    ]
    assert se._ik.hex() not in audit.read_text().lower()
    assert answer["wrapped"] not in audit.read_text()
    for path in (audit, custody_home / "kif" / "devices.db"):
        assert oct(path.stat().st_mode & 0o777) == "0o600", path
    # The switch's token cannot do it: it has no copy of the KIF's BDK label.
    code = (
        "import os, sys; from hsm.config import HsmConfig; from hsm.pool import HsmPool\n"
        "from hsm.kif import wrap_initial_key_for_terminal\n"
        "m, e = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2])\n"
        "HsmPool(HsmConfig.for_party('switch')).run_sync("
        "wrap_initial_key_for_terminal, os.urandom(8), m, e)\n"
    )
    m, e = se.transport_public_key()
    out = _run(custody_home, "-c", code, m.hex(), e.hex())
    assert out.returncode != 0 and "no key labelled 'kif/bdk.switch/v1'" in out.stderr
