"""EMV ARQC verification / ARPC generation through the HSM, and the simulated card.

Published vectors, all from pyemv (github.com/knovichikhin/pyemv):
- pyemv/kd.py docstrings: ICC master key option A, IMK 0123456789ABCDEFFEDCBA9876543210, PAN
  12345678901234567, PSN 01 -> 73AD54688CEF2934B0979857E3C719F1; common session key, MK
  0123456789ABCDEFFEDCBA9876543210, R = 001C000000000000 -> E9FB384AF807B940FEDCEA613461B0C4.
- pyemv/ac.py docstrings: ARQC (MAC algorithm 3, padding method 2) under SK
  AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB -> 3B76CF10FECD8789; ARPC method 1, ARQC 1234567890ABCDEF,
  ARC 0000 -> F5E6F44147E2F1B0.
- tests/test_cvn_hsm.py test_visa_cvn18 (IMK -> MK option A -> common-core SK -> ARQC, the full
  issuer chain): IMK-AC 0123456789ABCDEFFEDCBA9876543210, PAN 1234567890123456, PSN 00, ATC 001C,
  MK KCV BAB0, SK KCV 22C8, ARQC 7A788EA6B8A3E733; and test_visa_cvn10 (MK as AC key, padding
  method 1): ARQC 29CCA15AE665FA2E, ARPC (ARC 3030) 28993816AFAE4AEB.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from pkcs11 import Attribute, KeyType, ObjectClass

from hsm import emv
from hsm.emv import ArqcData, DesKeyPair, EmvError
from hsm.keys import compute_kcv
from hsm.templates import validate

IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
CVN_PAN, CVN_PSN, CVN_ATC = "1234567890123456", "00", bytes.fromhex("001C")
CVN_COMMON = dict(
    amount_authorised=bytes.fromhex("000000004000"),
    amount_other=bytes.fromhex("000000000000"),
    terminal_country=bytes.fromhex("0124"),
    tvr=bytes.fromhex("8000048000"),
    currency=bytes.fromhex("0124"),
    date=bytes.fromhex("191105"),
    txn_type=bytes.fromhex("01"),
    unpredictable_number=bytes.fromhex("52BF4585"),
    aip=bytes.fromhex("1800"),
    atc=CVN_ATC,
)
CVN18_DATA = ArqcData(**CVN_COMMON, iad=bytes.fromhex("06011203A0B800"))
CVN18_ARQC = bytes.fromhex("7A788EA6B8A3E733")


def des2_key(session, value: bytes, *caps: Attribute):
    """A known-value DES2 test key (session object, sensitive, non-extractable)."""
    tpl = {
        Attribute.CLASS: ObjectClass.SECRET_KEY,
        Attribute.KEY_TYPE: KeyType.DES2,
        Attribute.VALUE: value,
        Attribute.TOKEN: False,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
    }
    for cap in (Attribute.ENCRYPT, Attribute.DECRYPT, Attribute.DERIVE):
        tpl[cap] = cap in caps
    return session.create_object(validate(tpl))


def tdes(key: bytes, data: bytes) -> bytes:
    """Test reference only: 3DES-ECB under a clear double-length key (`cryptography`)."""
    enc = Cipher(TripleDES(key + key[:8]), modes.ECB()).encryptor()  # noqa: S305 - reference
    return enc.update(data) + enc.finalize()


def kcv(key) -> bytes:
    """KCV computed in the HSM (the ceremony's method: 3DES-ECB of a zero block)."""
    return compute_kcv(key, KeyType.DES2)


def ref_kcv(key: bytes) -> bytes:
    return tdes(key, bytes(8))[:3]


def ref_arqc(imk: bytes, pan: str, psn: str, atc: bytes, data: bytes) -> bytes:
    """Independent software reference of the whole issuer chain (option A, common core, MAC 3)."""
    y = bytes.fromhex((pan + psn)[-16:].rjust(16, "0"))
    mk = tdes(imk, y + bytes(b ^ 0xFF for b in y))
    sk = tdes(mk, atc + b"\xf0" + bytes(5) + atc + b"\x0f" + bytes(5))
    padded = emv.pad_method_2(data)
    h = bytes(8)
    for i in range(0, len(padded), 8):
        x = bytes(a ^ b for a, b in zip(h, padded[i : i + 8], strict=True))
        h = tdes(sk[:8] * 2, x)
    dec = Cipher(TripleDES(sk[8:] * 3), modes.ECB()).decryptor()  # noqa: S305 - reference
    return tdes(sk[:8] * 2, dec.update(h) + dec.finalize())


def session_objects(session) -> int:
    return len(list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})))


# --- padding and data ---------------------------------------------------------------------------


def test_padding_methods():
    assert emv.pad_method_2(b"") == b"\x80" + bytes(7)
    assert emv.pad_method_2(bytes(8)) == bytes(8) + b"\x80" + bytes(7)
    assert emv.pad_method_2(bytes(5)) == bytes(5) + b"\x80\x00\x00"
    assert emv.pad_method_1(b"") == bytes(8)
    assert emv.pad_method_1(bytes(8)) == bytes(8)
    assert emv.pad_method_1(b"\x01") == b"\x01" + bytes(7)


def test_arqc_data_layout_and_checks():
    raw = CVN18_DATA.to_bytes()
    assert raw.hex().upper() == (
        "0000000040000000000000000124800004800001241911050152BF45851800001C06011203A0B800"
    )
    bad = dict(CVN_COMMON, tvr=b"\x00")
    with pytest.raises(EmvError, match="CDOL1"):
        ArqcData(**bad).to_bytes()
    with pytest.raises(EmvError, match="32 bytes"):
        ArqcData(**CVN_COMMON, iad=bytes(33)).to_bytes()


# --- published vectors through the HSM -------------------------------------------------------


def test_icc_master_key_option_a(hsm_pool):
    def job(session):
        imk = des2_key(session, IMK, Attribute.DERIVE)
        try:
            mk = emv.derive_icc_master_key(
                imk, "12345678901234567", "01", capabilities={Attribute.ENCRYPT}
            )
            try:
                return kcv(mk)
            finally:
                mk.destroy()
        finally:
            imk.destroy()

    assert hsm_pool.run_sync(job) == ref_kcv(bytes.fromhex("73AD54688CEF2934B0979857E3C719F1"))


def test_common_core_session_key(hsm_pool):
    def job(session):
        mk = des2_key(session, IMK, Attribute.DERIVE)
        try:
            sk = emv.derive_session_keys(mk, bytes.fromhex("001C"))
            try:
                return kcv(sk.pair), kcv(sk.left)
            finally:
                sk.destroy()
        finally:
            mk.destroy()

    sk = bytes.fromhex("E9FB384AF807B940FEDCEA613461B0C4")
    assert hsm_pool.run_sync(job) == (ref_kcv(sk), ref_kcv(sk[:8] * 2))


def test_arqc_and_arpc_under_a_given_session_key(hsm_pool):
    a, b = bytes.fromhex("AAAAAAAAAAAAAAAA"), bytes.fromhex("BBBBBBBBBBBBBBBB")
    data = bytes.fromhex("000000002000000000000000012400000080000124110309003804823E58000001")

    def job(session):
        sk = DesKeyPair(
            des2_key(session, a + b, Attribute.ENCRYPT), des2_key(session, a + a, Attribute.ENCRYPT)
        )
        try:
            arqc = emv.mac_algorithm_3(sk, emv.pad_method_2(data))
            arpc = emv._arpc_method_1(sk, bytes.fromhex("1234567890ABCDEF"), b"\x00\x00")
            return arqc, arpc
        finally:
            sk.destroy()

    arqc, arpc = hsm_pool.run_sync(job)
    assert arqc.hex().upper() == "3B76CF10FECD8789"
    assert arpc.hex().upper() == "F5E6F44147E2F1B0"


def test_full_issuer_chain_visa_cvn18(hsm_pool):
    def job(session):
        imk = des2_key(session, IMK, Attribute.DERIVE)
        try:
            mk = emv.derive_icc_master_key(imk, CVN_PAN, CVN_PSN, capabilities={Attribute.ENCRYPT})
            mk_kcv = kcv(mk)
            mk.destroy()
            mk = emv.derive_icc_master_key(imk, CVN_PAN, CVN_PSN)
            sk = emv.derive_session_keys(mk, CVN_ATC)
            mk.destroy()
            sk_kcv = kcv(sk.pair)
            sk.destroy()
            data = CVN18_DATA.to_bytes()
            check = emv.check_arqc(session, imk, CVN_PAN, CVN_PSN, CVN_ATC, data, CVN18_ARQC, b"00")
            plain = emv.verify_arqc(session, imk, CVN_PAN, CVN_PSN, CVN_ATC, data, CVN18_ARQC)
            arpc = emv.generate_arpc(session, imk, CVN_PAN, CVN_PSN, CVN_ATC, CVN18_ARQC, b"00")
            tampered = bytearray(data)
            tampered[5] ^= 0x01  # amount
            bad = [
                emv.verify_arqc(
                    session, imk, CVN_PAN, CVN_PSN, CVN_ATC, bytes(tampered), CVN18_ARQC
                ),
                emv.verify_arqc(session, imk, CVN_PAN, CVN_PSN, b"\x00\x1d", data, CVN18_ARQC),
                emv.verify_arqc(session, imk, CVN_PAN, "01", CVN_ATC, data, CVN18_ARQC),
                emv.verify_arqc(
                    session, imk, "1234567890123457", CVN_PSN, CVN_ATC, data, CVN18_ARQC
                ),
            ]
            return mk_kcv, sk_kcv, check, plain, arpc, bad
        finally:
            imk.destroy()

    mk_kcv, sk_kcv, check, plain, arpc, bad = hsm_pool.run_sync(job)
    assert mk_kcv[:2].hex().upper() == "BAB0"
    assert sk_kcv[:2].hex().upper() == "22C8"
    assert check.valid and plain
    assert check.arpc == arpc and len(arpc) == 8
    assert bad == [False, False, False, False]
    assert ref_arqc(IMK, CVN_PAN, CVN_PSN, CVN_ATC, CVN18_DATA.to_bytes()) == CVN18_ARQC


def test_visa_cvn10_padding_method_1_and_arpc(hsm_pool):
    """CVN 10 uses the ICC master key itself and padding method 1: exercises the MK derivation
    into a K_A||K_B / K_A||K_A pair and the other padding."""
    data = ArqcData(**CVN_COMMON).to_bytes() + bytes.fromhex("03A06010")  # + CVR

    def job(session):
        imk = des2_key(session, IMK, Attribute.DERIVE)
        try:
            y = emv._option_a_data(CVN_PAN, CVN_PSN)[:8]
            mk = DesKeyPair(
                emv.derive_icc_master_key(imk, CVN_PAN, CVN_PSN, capabilities={Attribute.ENCRYPT}),
                emv.des3_derive(imk, y + y, capabilities={Attribute.ENCRYPT}),
            )
            try:
                arqc = emv.mac_algorithm_3(mk, emv.pad_method_1(data))
                return arqc, emv._arpc_method_1(mk, arqc, bytes.fromhex("3030"))
            finally:
                mk.destroy()
        finally:
            imk.destroy()

    arqc, arpc = hsm_pool.run_sync(job)
    assert arqc.hex().upper() == "29CCA15AE665FA2E"
    assert arpc.hex().upper() == "28993816AFAE4AEB"


# --- simulated card -> issuer ---------------------------------------------------------------


def test_simulated_card_produces_cryptograms_the_issuer_verifies(hsm_pool, hsm_keys):
    """A card personalised from bank-a's ceremony IMK makes an ARQC in the HSM; the issuer path
    verifies it and answers with an ARPC the card accepts."""
    from hsm.pool import get_key

    pan, psn = "4111111111111111", "01"
    txn = ArqcData(
        amount_authorised=bytes.fromhex("000000012345"),
        amount_other=bytes(6),
        terminal_country=bytes.fromhex("0276"),
        tvr=bytes(5),
        currency=bytes.fromhex("0978"),
        date=bytes.fromhex("261121"),
        txn_type=b"\x00",
        unpredictable_number=bytes.fromhex("A1B2C3D4"),
        aip=bytes.fromhex("3900"),
        atc=bytes.fromhex("0007"),
        iad=bytes.fromhex("0FA501A030000000000000000000000F00"),
    )

    def job(session):
        imk = get_key(session, "bank-a/imk-ac/v1")
        before = session_objects(session)
        card = emv.personalise_card(
            session, imk, pan, psn, label="card/sim-0001/mk-ac/v1", token=False
        )
        try:
            attrs = {
                a.name: bool(card[a])
                for a in (
                    Attribute.SENSITIVE,
                    Attribute.EXTRACTABLE,
                    Attribute.DERIVE,
                    Attribute.ENCRYPT,
                )
            }
            data = txn.to_bytes()
            arqc = emv.card_generate_arqc(session, card, txn.atc, data)
            check = emv.check_arqc(session, imk, pan, psn, txn.atc, data, arqc, b"00")
            card_ok = emv.card_verify_arpc(session, card, txn.atc, arqc, b"00", check.arpc)
            card_bad = emv.card_verify_arpc(session, card, txn.atc, arqc, b"05", check.arpc)
            replay = emv.check_arqc(session, imk, pan, psn, b"\x00\x08", data, arqc, b"00")
        finally:
            card.destroy()
        return attrs, check, card_ok, card_bad, replay, session_objects(session) - before

    attrs, check, card_ok, card_bad, replay, leaked = hsm_pool.run_sync(job)
    assert attrs == {"SENSITIVE": True, "EXTRACTABLE": False, "DERIVE": True, "ENCRYPT": False}
    assert check.valid and check.arpc is not None
    assert card_ok and not card_bad
    assert replay == emv.ArqcCheck(False, None)
    assert leaked == 0  # every derived session key was destroyed


def test_card_and_reference_agree_on_random_inputs(hsm_pool):
    """The HSM card path against the independent `cryptography` reference, many inputs."""
    import os

    cases = [
        (
            os.urandom(16),
            "5" + os.urandom(8).hex()[:15].translate(str.maketrans("abcdef", "012345")),
            os.urandom(2),
            os.urandom(n),
        )
        for n in (1, 7, 8, 9, 33, 64)
    ]

    def job(session):
        out = []
        for imk_value, pan, atc, data in cases:
            imk = des2_key(session, imk_value, Attribute.DERIVE)
            try:
                card = emv.personalise_card(
                    session, imk, pan, "00", label="card/tmp/mk-ac/v1", token=False
                )
                try:
                    arqc = emv.card_generate_arqc(session, card, atc, data)
                finally:
                    card.destroy()
                out.append((arqc, emv.verify_arqc(session, imk, pan, "00", atc, data, arqc)))
            finally:
                imk.destroy()
        return out

    for (imk_value, pan, atc, data), (arqc, ok) in zip(cases, hsm_pool.run_sync(job), strict=True):
        assert ok and arqc == ref_arqc(imk_value, pan, "00", atc, data)


def test_derived_keys_are_locked_down(hsm_pool):
    def job(session):
        imk = des2_key(session, IMK, Attribute.DERIVE)
        try:
            mk = emv.derive_icc_master_key(imk, CVN_PAN, CVN_PSN)
            sk = emv.derive_session_keys(mk, CVN_ATC)
            names = (
                Attribute.TOKEN,
                Attribute.SENSITIVE,
                Attribute.EXTRACTABLE,
                Attribute.DERIVE,
                Attribute.ENCRYPT,
                Attribute.DECRYPT,
                Attribute.SIGN,
            )
            out = [{a.name: bool(k[a]) for a in names} for k in (mk, sk.pair, sk.left)]
            mk.destroy()
            sk.destroy()
            return out
        finally:
            imk.destroy()

    mk, pair, left = hsm_pool.run_sync(job)
    locked = {
        "TOKEN": False,
        "SENSITIVE": True,
        "EXTRACTABLE": False,
        "DECRYPT": False,
        "SIGN": False,
    }
    assert mk == {**locked, "DERIVE": True, "ENCRYPT": False}
    assert pair == left == {**locked, "DERIVE": False, "ENCRYPT": True}


@pytest.mark.parametrize(
    ("pan", "psn", "atc", "arqc", "match"),
    [
        ("12345678901", "00", b"\x00\x01", bytes(8), "PAN"),
        ("1234567890123456", "0", b"\x00\x01", bytes(8), "sequence"),
        ("1234567890123456", "00", b"\x01", bytes(8), "ATC"),
        ("1234567890123456", "00", b"\x00\x01", bytes(7), "ARQC"),
    ],
)
def test_input_checks_never_echo_data(hsm_pool, pan, psn, atc, arqc, match):
    def job(session):
        imk = des2_key(session, IMK, Attribute.DERIVE)
        try:
            with pytest.raises(EmvError, match=match) as exc:
                emv.check_arqc(session, imk, pan, psn, atc, b"\x01", arqc, None)
            return str(exc.value)
        finally:
            imk.destroy()

    assert pan not in hsm_pool.run_sync(job)
