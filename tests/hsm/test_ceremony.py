"""Key ceremony: every party's keys exist, locked down, with KCVs; idempotent; CLI works."""

from __future__ import annotations

from pathlib import Path

from pkcs11 import Attribute

from hsm import keys
from hsm import labels as L
from hsm.exchange import ceremony
from hsm.pool import get_key


def test_every_party_has_its_keys(hsm_keys):
    for owner, purpose in [
        ("switch", "bdk"),
        ("kif", "bdk.switch"),
        ("switch", "token"),
        ("switch", "fingerprint"),
        ("switch", "vault"),
        ("switch", "zpk.acq-alpha"),
        ("acq-alpha", "zpk.switch"),
        ("acq-beta", "zpk.bank-c"),
        ("bank-c", "zpk.acq-beta"),
        ("bank-a", "cvk"),
        ("bank-a", "cvk-a"),
        ("bank-b", "imk-ac"),
        ("bank-c", "pvk"),
    ]:
        assert f"{owner}/{purpose}/v1" in hsm_keys, (owner, purpose)


def test_keys_are_sensitive_non_extractable_least_capability(hsm_pool, hsm_keys):
    def job(session):
        out = {}
        for label in hsm_keys:
            k = get_key(session, label)
            out[label] = {
                a.name: bool(k[a])
                for a in (
                    Attribute.SENSITIVE,
                    Attribute.EXTRACTABLE,
                    Attribute.ALWAYS_SENSITIVE,
                    Attribute.NEVER_EXTRACTABLE,
                    Attribute.TOKEN,
                    Attribute.DERIVE,
                    Attribute.SIGN,
                    Attribute.ENCRYPT,
                )
            }
        return out

    attrs = hsm_pool.run_sync(job)
    shared = _sent_at_birth()
    assert "switch/bdk/v1" in shared and "switch/zpk.acq-alpha/v1" in shared
    received = _received()
    for label, a in attrs.items():
        assert a["SENSITIVE"] and a["TOKEN"], label
        # PKCS#11 marks every unwrapped key not ALWAYS_SENSITIVE (it arrived from outside).
        assert a["ALWAYS_SENSITIVE"] == (label not in received), label
        assert not a["EXTRACTABLE"], label
        # A shared key left its owner's token once, wrapped, at birth, and the peer's copy came
        # from outside: PKCS#11 says, honestly, neither is NEVER_EXTRACTABLE.
        assert a["NEVER_EXTRACTABLE"] == (label not in shared | received), label
    bdk = attrs["switch/bdk/v1"]
    assert bdk["DERIVE"] and not bdk["SIGN"] and not bdk["ENCRYPT"]
    assert not attrs["switch/vault/v1"]["DERIVE"]
    assert not attrs["switch/token/v1"]["DERIVE"]
    assert attrs["bank-c/pvk/v1"]["SIGN"] and not attrs["bank-c/pvk/v1"]["ENCRYPT"]
    assert attrs["bank-a/cvk/v1"]["ENCRYPT"] and not attrs["bank-a/cvk/v1"]["DERIVE"]
    assert attrs["bank-a/imk-ac/v1"]["DERIVE"] and not attrs["bank-a/imk-ac/v1"]["ENCRYPT"]


def _shared_specs():
    """Every shared KeySpec of the plan, an issuer's CVK pair counted as both its objects."""
    from payswitch.world.topology import load

    topo = load(Path(__file__).resolve().parents[2] / "topology/default.toml")
    for s in keys.plan(topo):
        if s.peer is None:
            continue
        yield s
        if s.purpose == L.CVK:
            yield keys.KeySpec(s.owner, L.CVK_A, peer=s.peer)


def _received():
    return {L.label(s.peer, s.peer_purpose()) for s in _shared_specs()}


def _sent_at_birth():
    """Owner-side labels of shared keys (the receiver's copy was unwrapped non-extractable)."""
    return {L.label(s.owner, s.purpose) for s in _shared_specs()}


def test_kcvs_are_recorded_and_recomputable(hsm_pool, hsm_keys):
    from pkcs11 import KeyType

    def job(session):
        return {
            lab: keys.compute_kcv(get_key(session, lab), kt).hex().upper()
            for lab, kt in [
                ("switch/token/v1", KeyType.GENERIC_SECRET),
                ("bank-b/pvk/v1", KeyType.AES),
                ("bank-b/cvk/v1", KeyType.DES2),
                ("bank-b/cvk-a/v1", KeyType.DES2),
            ]
        }

    for label, kcv in hsm_pool.run_sync(job).items():
        assert hsm_keys[label].kcv == kcv, label
    assert all(len(i.kcv) == 6 for i in hsm_keys.values())


def test_zone_keys_are_shared_by_both_labels(hsm_keys):
    a = hsm_keys["switch/zpk.acq-beta/v1"]
    b = hsm_keys["acq-beta/zpk.switch/v1"]
    assert a.kcv == b.kcv and len(a.kcv) == 6
    assert hsm_keys["acq-alpha/zpk.bank-a/v1"].kcv == hsm_keys["bank-a/zpk.acq-alpha/v1"].kcv
    assert hsm_keys["switch/bdk/v1"].kcv == hsm_keys["kif/bdk.switch/v1"].kcv
    assert a.kcv != hsm_keys["switch/zpk.acq-alpha/v1"].kcv


def test_ensure_is_idempotent(hsm_pool, hsm_keys):
    from payswitch.world.topology import load

    topo = load(Path(__file__).resolve().parents[2] / "topology/default.toml")
    again = ceremony(lambda _party: hsm_pool, keys.plan(topo))
    assert not any(i.created for i in again)
    assert {i.label: i.kcv for i in again} == {k: v.kcv for k, v in hsm_keys.items()}
    assert len(hsm_pool.run_sync(keys.list_keys)) >= len(hsm_keys)


def test_labels_round_trip():
    assert str(L.parse("acq-alpha/zpk.bank-a/v12")) == "acq-alpha/zpk.bank-a/v12"
    for bad in ("switch/bdk", "Switch/bdk/v1", "switch/bdk/v0", "a/b/c/v1"):
        try:
            L.parse(bad)
        except ValueError:
            continue
        raise AssertionError(bad)
