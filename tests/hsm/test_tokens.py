"""PAN tokens and fingerprints: HMAC-SHA256 in the HSM, format-preserving, Luhn-invalid."""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest

from hsm import tokens
from hsm.pool import forget_key
from hsm.tokens import HsmCardProtector, PanError, luhn_valid, shape

PANS = [
    "4111111111111111",
    "5555555555554444",
    "378282246310005",
    "6011111111111117",
    "2223000048400011",
    "4000000000000002",
    "6200000000000005",
    "3530111333300000",
]


async def test_token_shape_and_determinism(hsm_pool, hsm_keys):
    for pan in PANS:
        t1 = await hsm_pool.run(tokens.tokenize, pan)
        t2 = await hsm_pool.run(tokens.tokenize, pan)
        assert t1 == t2
        assert len(t1) == len(pan) and t1.isdigit()
        assert t1[:6] == pan[:6] and t1[-4:] == pan[-4:]
        assert t1 != pan
        assert not luhn_valid(t1), "a token must never pass as a PAN"
    assert len({await hsm_pool.run(tokens.tokenize, p) for p in PANS}) == len(PANS)


async def test_full_digest_and_fingerprint(hsm_pool, hsm_keys):
    t = await hsm_pool.run(tokens.tokenize_full, "4111111111111111")
    assert len(t.digest) == 64 and "4111111111111111" not in repr(t)
    other = await hsm_pool.run(tokens.tokenize_full, "4111111111111129")
    assert other.digest != t.digest
    fp = await hsm_pool.run(tokens.fingerprint, b"4111111111111111")
    assert len(fp) == 64 and fp != t.digest  # different key, different domain


def test_shape_is_the_hmac_of_the_hsm_key(hsm_pool):
    """With a known (imported, test-only) key the HSM result equals stdlib HMAC-SHA256."""
    from pkcs11 import Attribute, KeyType, ObjectClass

    key_value = bytes(range(32))

    def job(session):
        key = session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
                Attribute.TOKEN: False,
                Attribute.LABEL: "test/token/v1",
                Attribute.SIGN: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.VALUE: key_value,
            }
        )
        try:
            return tokens.tokenize_full(session, "4111111111111111", "test/token/v1")
        finally:
            key.destroy()
            forget_key(session, "test/token/v1")

    tok = hsm_pool.run_sync(job)
    expected = hmac.new(key_value, b"PSW-TOKEN-1|4111111111111111", hashlib.sha256).digest()
    assert tok.digest == expected.hex()
    assert tok.display == shape("4111111111111111", expected)


def test_shape_properties():
    rng = random.Random(7)
    for _ in range(2000):
        length = rng.choice([12, 15, 16, 19])
        pan = "".join(str(rng.randrange(10)) for _ in range(length))
        mac = bytes(rng.randrange(256) for _ in range(32))
        tok = shape(pan, mac)
        assert len(tok) == length and tok[:6] == pan[:6] and tok[-4:] == pan[-4:]
        assert not luhn_valid(tok)


@pytest.mark.parametrize(
    "bad", ["", "4111", "41111111111111111111", "4111-1111-1111-1111", "٤١١١١١١١١١١١١"]
)
async def test_bad_pan_is_refused_without_echo(hsm_pool, hsm_keys, bad):
    with pytest.raises(PanError) as err:
        await hsm_pool.run(tokens.tokenize, bad)
    assert bad not in str(err.value) or bad == ""


async def test_card_protector_protocol(hsm_pool, hsm_keys):
    p = HsmCardProtector(hsm_pool)
    assert await p.tokenize("5555555555554444") == await hsm_pool.run(
        tokens.tokenize, "5555555555554444"
    )
    assert len(await p.digest(b"abc")) == 64
