"""Visa CVV / CVV2 / iCVV through the HSM (MAC algorithm 3 on a CVK pair in SoftHSM).

Published vectors (cited per case):
- tilln/jmeter-iso8583, src/test/java/nz/co/breakpoint/jmeter/iso8583/
  CalculateCVVFunctionTest.java (CVK 1313..13 from ISO8583TestBase.DEFAULT_3DES_KEY): PAN
  4444333322221111, expiry 9911: CVV (101) 662, CVV2 (000) 114, iCVV (999) 163.
- knovichikhin/psec tests/test_cvv.py test_generate_cvv: CVK 9999999999999999 8888888888888888,
  PAN 2222222222222222, expiry 3333, service code 111 -> 361.
- UrielYair/CredoraxCourse src/org/hit/fintech2018/Yair/Assighnment2/CVCTest.java "Example 1":
  A D676DCF3AFB73505, B 32EAF00EA253D875, PAN 4123450990122129, expiry 0721, service code 202;
  E_A(block 1) 4DC867AA9BCE665B, after 3DES 24E1A05574051BBF, 4-digit CVC 2410.
- pablom/go-cavv cavv_test.go / cvv2.go: the Visa CAVV output is this algorithm with the ATN's
  last four digits in the expiry position: A 0123456789ABCDEF, B FEDCBA9876543210, PAN
  4123456789012345, "expiry" 7993, service code 700 -> 972.
"""

from __future__ import annotations

import uuid

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from hsm import cvv
from hsm.emv import DesKeyPair, des3_derive_pair, mac_algorithm_3
from hsm.keys import compute_kcv
from hsm.pool import forget_key
from hsm.templates import validate


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


def cvk_pair(session, a: bytes, b: bytes) -> DesKeyPair:
    return DesKeyPair(
        des2_key(session, a + b, Attribute.ENCRYPT), des2_key(session, a + a, Attribute.ENCRYPT)
    )


def with_cvk(pool, a_hex: str, b_hex: str, body):
    def job(session):
        keys = cvk_pair(session, bytes.fromhex(a_hex), bytes.fromhex(b_hex))
        try:
            return body(session, keys)
        finally:
            keys.destroy()

    return pool.run_sync(job)


def tdes_ecb(key: bytes, block: bytes) -> bytes:
    """Test reference only (`cryptography`): 3DES-ECB of one block under a clear key."""
    enc = Cipher(TripleDES(key + key[:8] if len(key) == 16 else key), modes.ECB()).encryptor()  # noqa: S305 - reference
    return enc.update(block) + enc.finalize()


VECTORS = [
    # (A, B, PAN, expiry, service code, expected)
    ("1313131313131313", "1313131313131313", "4444333322221111", "9911", "101", "662"),
    ("1313131313131313", "1313131313131313", "4444333322221111", "9911", "000", "114"),
    ("1313131313131313", "1313131313131313", "4444333322221111", "9911", "999", "163"),
    ("9999999999999999", "8888888888888888", "2222222222222222", "3333", "111", "361"),
    ("D676DCF3AFB73505", "32EAF00EA253D875", "4123450990122129", "0721", "202", "241"),
    ("0123456789ABCDEF", "FEDCBA9876543210", "4123456789012345", "7993", "700", "972"),
]


@pytest.mark.parametrize(("a", "b", "pan", "exp", "sc", "expected"), VECTORS)
def test_published_vectors(hsm_pool, a, b, pan, exp, sc, expected):
    def body(session, keys):
        made = cvv.generate_cvv(session, keys, pan, exp, sc)
        ok = cvv.verify_cvv(session, keys, pan, exp, sc, expected)
        wrong = str((int(expected) + 1) % 1000).zfill(3)
        bad = cvv.verify_cvv(session, keys, pan, exp, sc, wrong)
        return made, ok, bad

    assert with_cvk(hsm_pool, a, b, body) == (expected, True, False)


def test_intermediate_values_of_the_worked_example(hsm_pool):
    """CredoraxCourse "Example 1" publishes the steps: check each HSM operation against them."""
    data = cvv.cvv_input("4123450990122129", "0721", "202")
    assert data.hex().upper() == "41234509901221290721202000000000"

    def body(session, keys):
        step1 = keys.left.encrypt(bytes(data[:8]), mechanism=Mechanism.DES3_ECB)
        final = mac_algorithm_3(keys, bytes(data))
        four = cvv.generate_cvv(session, keys, "4123450990122129", "0721", "202", digits=4)
        return step1, final, four

    step1, final, four = with_cvk(hsm_pool, "D676DCF3AFB73505", "32EAF00EA253D875", body)
    assert step1.hex().upper() == "4DC867AA9BCE665B"
    assert final.hex().upper() == "24E1A05574051BBF"
    assert four == "2410"


def test_decimalisation_falls_back_to_hex_digits():
    assert cvv._decimalise(bytes.fromhex("ABCDEF0123456789"), 3) == b"012"
    assert cvv._decimalise(bytes.fromhex("ABCDEFABCDEFAB12"), 5) == b"12012"


@pytest.mark.parametrize(
    ("pan", "exp", "sc"),
    [
        ("41111111111", "2812", "101"),
        ("4111111111111111", "281", "101"),
        ("41111111111x1111", "2812", "101"),
        ("4111111111111111", "2812", "1011"),
    ],
)
def test_bad_inputs_are_refused_without_echo(hsm_pool, pan, exp, sc):
    def body(session, keys):
        with pytest.raises(cvv.CvvError) as exc:
            cvv.verify_cvv(session, keys, pan, exp, sc, "123")
        return str(exc.value)

    msg = with_cvk(hsm_pool, "0123456789ABCDEF", "FEDCBA9876543210", body)
    assert pan not in msg and exp not in msg


@pytest.mark.parametrize(
    "presented", ["", "12", "123456", "12a", None, "\uff11\uff12\uff13"]
)  # fullwidth
def test_malformed_presented_cvv_is_a_mismatch(hsm_pool, presented):
    result = with_cvk(
        hsm_pool,
        "0123456789ABCDEF",
        "FEDCBA9876543210",
        lambda s, k: cvv.verify_cvv(s, k, "4123456789012345", "7993", "700", presented),
    )
    assert result is False


def test_in_hsm_derivation_matches_reference(hsm_pool):
    """create_cvk's construction: K_A = 3DES_T(r1), K_B = 3DES_T(r2) and K_A||K_A, checked by KCV
    against a `cryptography` computation for a known T."""
    t = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    r1, r2 = bytes.fromhex("1122334455667788"), bytes.fromhex("99AABBCCDDEEFF00")

    def job(session):
        parent = des2_key(session, t, Attribute.DERIVE)
        try:
            keys = des3_derive_pair(parent, r1, r2, capabilities={Attribute.ENCRYPT})
            try:
                return (
                    compute_kcv(keys.pair, KeyType.DES2),
                    compute_kcv(keys.left, KeyType.DES2),
                    bool(keys.pair[Attribute.SENSITIVE]),
                )
            finally:
                keys.destroy()
        finally:
            parent.destroy()

    pair_kcv, left_kcv, sensitive = hsm_pool.run_sync(job)
    ka, kb = tdes_ecb(t, r1), tdes_ecb(t, r2)
    assert pair_kcv == tdes_ecb(ka + kb, bytes(8))[:3]
    assert left_kcv == tdes_ecb(ka + ka, bytes(8))[:3]
    assert sensitive


def test_create_cvk_ceremony_objects(hsm_pool):
    owner = f"test-issuer-{uuid.uuid4().hex[:8]}"

    def create(session):
        keys = cvv.create_cvk(session, owner, 1)
        attrs = []
        for key in (keys.pair, keys.left):
            attrs.append(
                {
                    a.name: bool(key[a])
                    for a in (
                        Attribute.TOKEN,
                        Attribute.SENSITIVE,
                        Attribute.EXTRACTABLE,
                        Attribute.ENCRYPT,
                        Attribute.DECRYPT,
                        Attribute.DERIVE,
                        Attribute.SIGN,
                    )
                }
            )
        return attrs

    def use_and_destroy(session):
        keys = cvv.load_cvk(session, owner, 1)
        try:
            c = cvv.generate_cvv(session, keys, "4111111111111111", "2812", "101")
            return c, cvv.verify_cvv(session, keys, "4111111111111111", "2812", "101", c)
        finally:
            keys.destroy()
            for label in cvv.cvk_labels(owner):
                forget_key(session, label)

    attrs = hsm_pool.run_sync(create)
    for a in attrs:
        assert a == {
            "TOKEN": True,
            "SENSITIVE": True,
            "EXTRACTABLE": False,
            "ENCRYPT": True,
            "DECRYPT": False,
            "DERIVE": False,
            "SIGN": False,
        }
    assert cvv.cvk_labels(owner) == (f"{owner}/cvk/v1", f"{owner}/cvk-a/v1")
    value, ok = hsm_pool.run_sync(use_and_destroy)
    assert len(value) == 3 and value.isdigit() and ok


def test_ceremony_cvk_of_an_issuer(hsm_pool, hsm_keys):
    """bank-a's CVK from the key ceremony: CVV, CVV2 and iCVV each verify."""
    assert {"bank-a/cvk/v1", "bank-a/cvk-a/v1"} <= set(hsm_keys)
    pan, exp = "4111111111111111", "2812"

    def job(session):
        keys = cvv.load_cvk(session, "bank-a")
        out = {}
        for sc in ("101", cvv.SERVICE_CODE_CVV2, cvv.SERVICE_CODE_ICVV):
            value = cvv.generate_cvv(session, keys, pan, exp, sc)
            out[sc] = (value, cvv.verify_cvv(session, keys, pan, exp, sc, value))
        return out

    out = hsm_pool.run_sync(job)
    assert all(ok and len(v) == 3 and v.isdigit() for v, ok in out.values())
