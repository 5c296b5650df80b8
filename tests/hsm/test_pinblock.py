"""ISO 9564-1 format 4 PIN blocks through the HSM: translate (switch) and verify (issuer).

Published vectors (cited per test):
- ep2 eft/pos 2000 Security Specification 8.0.0, 8.4 "PIN Encryption", as reproduced in the
  test suite of psec (github.com/knovichikhin/psec, tests/test_pinblock.py,
  test_decipher_pinblock_iso_4): key C1D0F8FB4958670DBA40AB1F3752EF0D, PAN 432198765432109870,
  block CC17F65586BFD0953010226C4FC5B3CA, PIN 1234.
- psec tests/test_pinblock.py test_encipher_pinblock_iso_4_det (fill FF..FF), the PAN-shorter-
  than-12 case of test_decipher_pinblock_iso_4, test_encode_pan_field_iso_4 and the malformed
  blocks of test_decipher_pinblock_iso_4_exception / test_decode_pinblock_iso_4_exception.

Test keys with published values are imported with create_object as session objects.
"""

from __future__ import annotations

import pytest
from pkcs11 import Attribute, KeyType, ObjectClass

from hsm import pinblock
from hsm.dukpt import KeyUsage, transaction_key
from hsm.kif import wrap_initial_key_for_terminal
from hsm.pinblock import PinBlockError
from hsm.templates import validate
from terminals import pinpad
from terminals.secure_element import SecureElement

EP2_KEY = bytes.fromhex("C1D0F8FB4958670DBA40AB1F3752EF0D")
EP2_PAN = "432198765432109870"
EP2_BLOCK = bytes.fromhex("CC17F65586BFD0953010226C4FC5B3CA")
PSEC_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
ZPK = bytes.fromhex("0F1E2D3C4B5A69788796A5B4C3D2E1F0")  # test zone PIN key


def aes_key(session, value: bytes, *caps: Attribute):
    """A known-value AES test key as a session object (sensitive, non-extractable)."""
    tpl = {
        Attribute.CLASS: ObjectClass.SECRET_KEY,
        Attribute.KEY_TYPE: KeyType.AES,
        Attribute.VALUE: value,
        Attribute.TOKEN: False,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
    }
    for cap in (Attribute.ENCRYPT, Attribute.DECRYPT, Attribute.SIGN, Attribute.DERIVE):
        tpl[cap] = cap in caps
    return session.create_object(validate(tpl))


def with_keys(pool, specs, body):
    """Run ``body(session, *keys)`` in one HSM job with imported keys, destroyed afterwards."""

    def job(session):
        keys = [aes_key(session, value, *caps) for value, caps in specs]
        try:
            return body(session, *keys)
        finally:
            for k in keys:
                k.destroy()

    return pool.run_sync(job)


DEC = (Attribute.DECRYPT,)
ENC_DEC = (Attribute.ENCRYPT, Attribute.DECRYPT)
SIGN = (Attribute.SIGN,)


# --- format (no HSM) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pan", "field"),
    [
        ("112233445566778899", "61122334455667788990000000000000"),  # psec
        ("1", "00000000000010000000000000000000"),  # shorter than 12: left-padded, M = 0
        ("4111111111111111", "44111111111111111000000000000000"),
        ("1234567890123456789", "71234567890123456789000000000000"),
    ],
)
def test_pan_field_construction(pan, field):
    assert pinblock.pan_field(pan).hex().upper() == field


@pytest.mark.parametrize("pan", ["", "12345678901234567890", "41111111111A", " 4111"])
def test_pan_field_rejects_bad_pan(pan):
    with pytest.raises(PinBlockError) as exc:
        pinblock.pan_field(pan)
    assert "1 to 19" in str(exc.value)


@pytest.mark.parametrize(
    ("field", "reason"),
    [  # psec test_decode_pinblock_iso_4_exception
        ("541234AAAAAAAAAA548ED7FD65495950", "control field"),
        ("43123AAAAAAAAAAA548ED7FD65495950", "length"),
        ("441234ABCDEFABCD548ED7FD65495950", "fill"),
        ("4412D4AAAAAAAAAA548ED7FD65495950", "non-decimal"),
        ("4D1234567890123A548ED7FD65495950", "length"),  # N = 13
        ("441234AAAAAAAA", "16 bytes"),
    ],
)
def test_pin_field_checks(field, reason):
    with pytest.raises(PinBlockError, match=reason):
        pinblock.check_pin_field(bytes.fromhex(field))


def test_pin_field_accepts_4_to_12_digits_and_any_random_half():
    assert pinblock.check_pin_field(bytes.fromhex("441234AAAAAAAAAA548ED7FD65495950")) == 4
    assert pinblock.check_pin_field(bytes.fromhex("4C123456789012AA" + "FF" * 8)) == 12


def test_simulated_pin_pad_matches_published_block():
    # psec test_encipher_pinblock_iso_4_det: random fill forced to FF..FF.
    block = pinpad.sim_encipher_pin_block(PSEC_KEY, "1234", "1234567890123456789", b"\xff" * 8)
    assert block.hex().upper() == "28B41FDDD29B743E93124BD8E32D921E"
    assert pinpad.sim_decipher_pin_block(EP2_KEY, EP2_BLOCK, EP2_PAN) == "1234"


@pytest.mark.parametrize(
    "pin", ["123", "1234567890123", "12a4", "\uff11\uff12\uff13\uff14"]
)  # fullwidth
def test_simulator_refuses_bad_pins(pin):
    with pytest.raises(PinBlockError):
        pinpad.sim_encipher_pin_block(PSEC_KEY, pin, "4111111111111111")


def test_zeroize_clears_bytes_and_bytearrays():
    a = bytearray(b"1234567890abcdef")
    b = bytes.fromhex("00112233445566778899aabbccddeeff")
    pinblock.zeroize(a, b)
    assert a == bytes(16) and b == bytes(16)


# --- HSM path ---------------------------------------------------------------------------------


def test_ep2_vector_translates_through_the_hsm(hsm_pool):
    """ep2 block under its PIN key -> our ZPK; the ZPK side deciphers to the published PIN."""

    def body(session, pek, zpk):
        return pinblock.translate(session, pek, zpk, EP2_BLOCK, EP2_PAN), pinblock.translate(
            session, pek, zpk, EP2_BLOCK, EP2_PAN
        )

    out1, out2 = with_keys(hsm_pool, [(EP2_KEY, DEC), (ZPK, ENC_DEC)], body)
    assert out1 != EP2_BLOCK and out1 != out2  # fresh HSM random fill on every translation
    assert pinpad.sim_decipher_pin_block(ZPK, out1, EP2_PAN) == "1234"
    assert pinpad.sim_decipher_pin_block(ZPK, out2, EP2_PAN) == "1234"


def test_hsm_encipher_matches_published_block(hsm_pool):
    """The HSM sealing path with the fill fixed reproduces psec's deterministic vector."""

    def body(session, key):
        field = pinblock.pin_field("1234", b"\xff" * 8)
        return pinblock._seal_field(key, field, pinblock.pan_field("1234567890123456789"))

    block = with_keys(hsm_pool, [(PSEC_KEY, (Attribute.ENCRYPT,))], body)
    assert block.hex().upper() == "28B41FDDD29B743E93124BD8E32D921E"


def test_short_pan_vector(hsm_pool):
    # psec test_decipher_pinblock_iso_4, "PAN length < 12": PAN "1", PIN 123456.
    block = bytes.fromhex("39B69B1B91FE05D48F7EF0D68EB2CBD6")
    out = with_keys(
        hsm_pool,
        [(PSEC_KEY, DEC), (ZPK, ENC_DEC)],
        lambda s, pek, zpk: pinblock.translate(s, pek, zpk, block, "1"),
    )
    assert pinpad.sim_decipher_pin_block(ZPK, out, "1") == "123456"


@pytest.mark.parametrize(
    ("key", "block", "pan", "reason"),
    [  # psec test_decipher_pinblock_iso_4_exception
        (
            "E60B15B90ABDF14CEE337C97440F0D6E",
            "7D5AF4C33667A2098626027FB7A9A1B7",
            "4266229809609384667",
            "control field",
        ),
        (
            "C7BBEBA16C5AD97D5866450718C03750",
            "2F9C910447F17293EC95DEDE1E3CA201",
            "8220499325458689523",
            "non-decimal",
        ),
        (
            "820F6C7C12355BDFF1AB6CE12E8EED89",
            "CCF310A8300B46C925A86B1098089301",
            "939589847393485609",
            "fill",
        ),
        (
            "4FE3F0311936FBCE44F17159F1659CF09B2BF8913BB514A1",  # AES-192
            "51334B00A6CBA3EC7B1C6F871F060AFC",
            "2129100799029059903",
            "length",
        ),
    ],
)
def test_malformed_blocks_are_refused_without_leaking(hsm_pool, key, block, pan, reason):
    def body(session, pek, zpk):
        with pytest.raises(PinBlockError, match=reason) as exc:
            pinblock.translate(session, pek, zpk, bytes.fromhex(block), pan)
        return str(exc.value)

    msg = with_keys(hsm_pool, [(bytes.fromhex(key), DEC), (ZPK, ENC_DEC)], body)
    assert pan not in msg and block not in msg.upper()


def test_block_length_is_checked(hsm_pool):
    def body(session, pek, zpk):
        with pytest.raises(PinBlockError, match="16 bytes"):
            pinblock.translate(session, pek, zpk, EP2_BLOCK + b"\x00", EP2_PAN)

    with_keys(hsm_pool, [(EP2_KEY, DEC), (ZPK, ENC_DEC)], body)


def test_issuer_verifies_against_pin_verification_value(hsm_pool):
    pan, other_pan = "4111111111111111", "4000000000000002"
    good = pinpad.sim_encipher_pin_block(ZPK, "4321", pan, b"\x11" * 8)
    wrong = pinpad.sim_encipher_pin_block(ZPK, "4322", pan, b"\x11" * 8)
    refill = pinpad.sim_encipher_pin_block(ZPK, "4321", pan)  # random fill

    def body(session, zpk, pvk):
        pvv = pinblock.pvv_from_pin(session, pvk, pan, "4321")
        assert len(pvv) == pinblock.PVV_LEN
        assert pinblock.pvv_from_pin_block(session, zpk, pvk, refill, pan) == pvv
        assert pinblock.pvv_from_pin(session, pvk, other_pan, "4321") != pvv  # bound to the PAN
        results = [pinblock.verify_pin(session, zpk, pvk, b, pan, pvv) for b in (good, refill)]
        results.append(pinblock.verify_pin(session, zpk, pvk, wrong, pan, pvv))
        results.append(pinblock.verify_pin(session, zpk, pvk, good, pan, pvv[:-1] + b"\x00"))
        results.append(pinblock.verify_pin(session, zpk, pvk, good, pan, b""))
        with pytest.raises(PinBlockError):  # the block is bound to its PAN
            pinblock.verify_pin(session, zpk, pvk, good, other_pan, pvv)
        return results

    pvk_value = bytes(range(32))
    assert with_keys(hsm_pool, [(ZPK, ENC_DEC), (pvk_value, SIGN)], body) == [
        True,
        True,
        False,
        False,
        False,
    ]


def test_pin_length_4_to_12_round_trip(hsm_pool):
    pan = "5555555555554444"

    def body(session, zpk, pvk):
        out = []
        for n in range(4, 13):
            pin = "9876543210987"[:n]
            pvv = pinblock.pvv_from_pin(session, pvk, pan, pin)
            block = pinpad.sim_encipher_pin_block(ZPK, pin, pan)
            out.append(pinblock.verify_pin(session, zpk, pvk, block, pan, pvv))
            out.append(
                pinblock.verify_pin(
                    session,
                    zpk,
                    pvk,
                    block,
                    pan,
                    pinblock.pvv_from_pin(
                        session, pvk, pan, pin[:-1] + str((int(pin[-1]) + 1) % 10)
                    ),
                )
            )
        return out

    out = with_keys(hsm_pool, [(ZPK, ENC_DEC), (bytes(32), SIGN)], body)
    assert out == [True, False] * 9


def test_terminal_to_issuer_with_dukpt_and_ceremony_keys(hsm_pool, hsm_keys):
    """Four parties: a simulated terminal (injected through the HSM) builds a block under its
    DUKPT PIN key; the switch translates it to the ZPK it shares with the acquirer, the acquirer
    to the ZPK it shares with the issuer, and the issuer verifies it against its PVV."""
    from hsm.pool import get_key

    pan, pin = "4111111111111111", "2468"
    se = SecureElement()
    modulus, exponent = se.transport_public_key()
    ikid = bytes.fromhex("00000001A1B2C3D4")
    wrapped = hsm_pool.run_sync(wrap_initial_key_for_terminal, ikid, modulus, exponent).wrapped
    se.load_initial_key(ikid, wrapped)
    txn = se.begin()
    block = pinpad.sim_encipher_pin_block(txn.pin_encrypt_block, pin, pan)

    def switch(session):
        with transaction_key(session, txn.ksn) as tk:
            pek = tk.working_key(KeyUsage.PIN_ENCRYPTION)
            zpk = get_key(session, "switch/zpk.acq-alpha/v1")
            return pinblock.translate(session, pek, zpk, block, pan)

    def acquirer(session, blk):
        inbound = get_key(session, "acq-alpha/zpk.switch/v1")
        outbound = get_key(session, "acq-alpha/zpk.bank-a/v1")
        return pinblock.translate(session, inbound, outbound, blk, pan)

    to_acquirer = hsm_pool.run_sync(switch)
    to_issuer = hsm_pool.run_sync(acquirer, to_acquirer)
    assert len({block, to_acquirer, to_issuer}) == 3

    def issuer(session, blk):
        zpk = get_key(session, "bank-a/zpk.acq-alpha/v1")
        pvk = get_key(session, "bank-a/pvk/v1")
        pvv = pinblock.pvv_from_pin(session, pvk, pan, pin)
        wrong = pinblock.pvv_from_pin(session, pvk, pan, "2469")
        return [pinblock.verify_pin(session, zpk, pvk, blk, pan, v) for v in (pvv, wrong)]

    assert hsm_pool.run_sync(issuer, to_issuer) == [True, False]
