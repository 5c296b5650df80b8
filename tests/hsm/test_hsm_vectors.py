"""The published terminal vectors (docs/vectors/terminal-v1.json) against the switch's HSM code
in SoftHSM: the X9.24-3 sample BDK imported as a session object (DERIVE only), every case's
request MAC verified and its card data opened by ``hsm.mac`` as the switch does, a changed
byte refused, every sample answer's response MAC made again, and every PIN block translated
to a test zone key and read back. The HSM derives its keys itself, so this is an
implementation independent of the terminal code that made the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pkcs11 import Attribute, KeyType, ObjectClass

from hsm import mac, pinblock
from hsm.dukpt import KeyUsage, Ksn, transaction_key
from hsm.errors import IntegrityError
from hsm.templates import validate
from terminals.pinpad import sim_decipher_pin_block

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "vectors" / "terminal-v1.json").read_text()
)
CASES = VECTORS["cases"]
ZPK = bytes.fromhex("0F1E2D3C4B5A69788796A5B4C3D2E1F0")  # test zone PIN key


def _key(session, value: bytes, **caps: bool):
    tpl = {
        Attribute.CLASS: ObjectClass.SECRET_KEY,
        Attribute.KEY_TYPE: KeyType.AES,
        Attribute.VALUE: value,
        Attribute.TOKEN: False,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
    }
    for cap in ("ENCRYPT", "DECRYPT", "SIGN", "DERIVE"):
        tpl[getattr(Attribute, cap)] = caps.get(cap.lower(), False)
    return session.create_object(validate(tpl))


def _with_bdk(pool, body):
    """``body(session, bdk, zpk)`` in one HSM job; the imported keys vanish afterwards."""

    def job(session):
        bdk = _key(session, bytes.fromhex(VECTORS["dukpt"]["bdk"]), derive=True)
        zpk = _key(session, ZPK, encrypt=True, decrypt=True)
        try:
            return body(session, bdk, zpk)
        finally:
            bdk.destroy()
            zpk.destroy()

    return pool.run_sync(job)


def _flip(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_the_switch_hsm_verifies_and_answers_each_case(hsm_pool, case):
    ksn = bytes.fromhex(case["ksn"])
    form = bytes.fromhex(case["request_mac_input"])
    request_mac = bytes.fromhex(case["request_mac"])
    answer_form = bytes.fromhex(case["response_mac_input"])

    def body(session, bdk, _zpk):
        mac.verify_request_mac(session, ksn, form, request_mac, bdk)
        refused = 0
        for bad_form, bad_mac in ((_flip(form), request_mac), (form, _flip(request_mac))):
            try:
                mac.verify_request_mac(session, ksn, bad_form, bad_mac, bdk)
            except IntegrityError:
                refused += 1
        return refused, mac.response_mac(session, ksn, answer_form, bdk)

    refused, response_mac = _with_bdk(hsm_pool, body)
    assert refused == 2
    assert response_mac.hex().upper() == case["response_mac"]


AUTHORIZE = [c for c in CASES if c["operation"] == "authorize"]


@pytest.mark.parametrize("case", AUTHORIZE, ids=[c["name"] for c in AUTHORIZE])
def test_the_switch_hsm_opens_card_data_and_pin_blocks(hsm_pool, case):
    ksn = bytes.fromhex(case["ksn"])
    pan = case["card"]["pan"]
    pin = case.get("pin")

    def body(session, bdk, zpk):
        plain = mac.open_request(
            session,
            bytes.fromhex(case["request_mac_input"]),
            ksn,
            bytes.fromhex(case["card_ciphertext"]),
            bytes.fromhex(case["request_mac"]),
            bdk,
        )
        if pin is None:
            return plain, None
        with transaction_key(session, Ksn.from_bytes(ksn), bdk) as tk:
            pek = tk.working_key(KeyUsage.PIN_ENCRYPTION)
            block = bytes.fromhex(pin["pin_block"])
            return plain, pinblock.translate(session, pek, zpk, block, pan)

    plain, translated = _with_bdk(hsm_pool, body)
    assert plain.hex().upper() == case["card_plaintext"]
    if pin is not None:
        assert sim_decipher_pin_block(ZPK, translated, pan) == pin["pin"]
