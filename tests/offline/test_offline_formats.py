"""Offline formats and signatures: RFC 6979 P-256/SHA-256 vectors on the verification path,
canonical bytes round trip and refuse anything else, the chain links spends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from payswitch.offline import ecdsa
from payswitch.offline.formats import Allowance, FormatError, Spend

REPO = Path(__file__).resolve().parents[2]

# RFC 6979 appendix A.2.5 (ECDSA, 256 bits, prime field), SHA-256.
RFC6979_PUB = bytes.fromhex(
    "04"
    "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
    "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299"
)
RFC6979 = [
    (
        b"sample",
        "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716",
        "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8",
    ),
    (
        b"test",
        "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367",
        "019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083",
    ),
]


@pytest.mark.parametrize(("message", "r", "s"), RFC6979)
def test_rfc6979_vectors_verify(message: bytes, r: str, s: str) -> None:
    sig = bytes.fromhex(r + s)
    assert ecdsa.verify(RFC6979_PUB, message, sig)
    assert not ecdsa.verify(RFC6979_PUB, message + b"!", sig)
    bad = bytearray(sig)
    bad[5] ^= 1
    assert not ecdsa.verify(RFC6979_PUB, message, bytes(bad))
    assert not ecdsa.verify(RFC6979_PUB, message, sig[:63])
    assert not ecdsa.verify(b"\x04" + bytes(64), message, sig)  # not on the curve


def test_rfc6979_public_key_from_private_scalar() -> None:
    key = ecdsa.SoftwareKey.from_scalar(
        0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
    )
    assert key.public_key() == RFC6979_PUB


def _allowance() -> Allowance:
    return Allowance(
        "bank-a", 2, "al-7", "411111-tok-1111", RFC6979_PUB, 5000, 20000, 10, "EUR", 100, 200
    )


def test_canonical_round_trip_and_refusals() -> None:
    a = _allowance()
    assert Allowance.parse(a.canonical()) == a
    assert a.canonical().startswith(b"PSW-OFFLINE-ALLOWANCE|1|bank-a|2|al-7|")
    s = Spend("al-7", 1, 1250, "EUR", "m-1", "t-1", 150, a.genesis())
    assert Spend.parse(s.canonical()) == s
    for bad in (
        s.canonical().replace(b"|1250|", b"|01250|"),
        s.canonical().replace(b"SPEND|1|", b"SPEND|2|"),
        s.canonical() + b"|x",
        s.canonical().replace(b"m-1", b"m|1"),
    ):
        with pytest.raises(FormatError):
            Spend.parse(bad)
    with pytest.raises(FormatError) as info:
        Spend("al-7", 0, 1250, "EUR", "m-1", "t-1", 150, a.genesis())
    assert info.value.field == "counter"
    with pytest.raises(FormatError) as info:
        Allowance("bank-a", 1, "a", "c", RFC6979_PUB, 1, 1, 1, "XXX", 1, 2)
    assert info.value.field == "currency"


def test_chain_links_each_spend_to_the_last() -> None:
    a = _allowance()
    s1 = Spend("al-7", 1, 100, "EUR", "m-1", "t-1", 150, a.genesis())
    s2 = Spend("al-7", 2, 100, "EUR", "m-1", "t-1", 151, s1.digest())
    assert s2.prev_hash == ecdsa.sha256(s1.canonical())
    assert s1.prev_hash == ecdsa.sha256(a.canonical())


def test_published_vectors_hold() -> None:
    """docs/vectors/offline-v1.json: what an implementer in another language checks against."""
    doc = json.loads((REPO / "docs" / "vectors" / "offline-v1.json").read_text())
    for v in doc["allowances"] + doc["spends"]:
        body = bytes.fromhex(v["canonical_hex"])
        assert body.decode("ascii") == v["canonical"]
        assert ecdsa.sha256(body).hex() == v["sha256"]
        pub = bytes.fromhex(v["public_key"])
        assert ecdsa.verify(pub, body, bytes.fromhex(v["signature"])) is v["valid"]
    kinds = {v["kind"] for v in doc["allowances"]} | {v["kind"] for v in doc["spends"]}
    assert {"allowance", "spend", "spend-tampered"} <= kinds
