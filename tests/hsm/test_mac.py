"""Request MAC on the terminal link: HSM recomputation, constant-time check, tamper refusal."""

from __future__ import annotations

import dataclasses

import pytest

from hsm import kif, mac
from hsm.errors import IntegrityError
from payswitch.seclink import canonical_request
from terminals.secure_element import SecureElement


@pytest.fixture(scope="module")
def terminal(hsm_pool, hsm_keys):
    se = SecureElement()
    m, e = se.transport_public_key()
    ikid = bytes.fromhex("000000010BADF00D")
    se.load_initial_key(
        ikid, hsm_pool.run_sync(kif.wrap_initial_key_for_terminal, ikid, m, e).wrapped
    )
    return se


def _fields(tx, ct: bytes) -> dict:
    return dict(
        terminal_id="T-0001",
        merchant_id="M-GROCER",
        stan=42,
        local_time="2026-11-21T14:03:05",
        amount_minor=1250,
        currency="EUR",
        entry_mode="chip",
        ksn=bytes(tx.ksn),
        card_ciphertext=ct,
        idempotency_key="k-1",
    )


def test_canonical_form_is_unambiguous():
    base = dict(
        terminal_id="T1",
        merchant_id="M1",
        stan=1,
        local_time="t",
        amount_minor=100,
        currency="EUR",
        entry_mode="chip",
        ksn=b"k",
        card_ciphertext=b"c",
    )
    a = canonical_request(**base)
    assert a.startswith(b"PSW-MAC-1")
    # moving characters between adjacent fields changes the bytes
    assert a != canonical_request(**{**base, "terminal_id": "T1M", "merchant_id": "1"})
    assert a != canonical_request(**{**base, "amount_minor": 1000})
    assert a != canonical_request(**{**base, "pin_block": b"\x00"})
    assert a == canonical_request(**base)


def _open(fields: dict, tag: bytes) -> tuple:
    """``open_request`` and its arguments for a request as received (canonical form, KSN, ct)."""
    msg = canonical_request(**fields)
    return mac.open_request, msg, fields["ksn"], fields["card_ciphertext"], tag


async def test_good_mac_verifies_and_opens(hsm_pool, terminal):
    tx = terminal.begin()
    ct = tx.encrypt_card_data(b"4111111111111111|2812")
    fields = _fields(tx, ct)
    tag = tx.mac(canonical_request(**fields))
    await hsm_pool.run(mac.verify_request_mac, tx.ksn, canonical_request(**fields), tag)
    assert await hsm_pool.run(*_open(fields, tag)) == b"4111111111111111|2812"
    assert await hsm_pool.run(mac.request_mac, tx.ksn, canonical_request(**fields)) == tag
    resp = b"response"
    assert await hsm_pool.run(mac.response_mac, tx.ksn, resp) == tx.response_mac(resp)


@pytest.mark.parametrize(
    "change",
    [
        {"amount_minor": 125000},
        {"stan": 43},
        {"terminal_id": "T-0002"},
        {"card_ciphertext": b"\x00" * 32},
        {"pin_block": b"\x01" * 16},
    ],
)
async def test_tampered_request_is_refused(hsm_pool, terminal, change):
    tx = terminal.begin()
    ct = tx.encrypt_card_data(b"5555555555554444|2906")
    fields = _fields(tx, ct)
    tag = tx.mac(canonical_request(**fields))
    with pytest.raises(IntegrityError):
        await hsm_pool.run(*_open({**fields, **change}, tag))


async def test_wrong_mac_replayed_ksn_and_bad_lengths(hsm_pool, terminal):
    tx = terminal.begin()
    other = terminal.begin()
    fields = _fields(tx, tx.encrypt_card_data(b"x"))
    msg = canonical_request(**fields)
    tag = tx.mac(msg)
    with pytest.raises(IntegrityError):  # MAC of another transaction's key
        await hsm_pool.run(mac.verify_request_mac, other.ksn, msg, tag)
    with pytest.raises(IntegrityError):
        await hsm_pool.run(mac.verify_request_mac, tx.ksn, msg, tag[:8])
    flipped = bytes([tag[0] ^ 1]) + tag[1:]
    with pytest.raises(IntegrityError):
        await hsm_pool.run(mac.verify_request_mac, tx.ksn, msg, flipped)
    assert "4111" not in str(dataclasses.asdict(tx.ksn))
