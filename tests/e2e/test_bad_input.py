"""Bad input gets INVALID_ARGUMENT naming the field, and changes no state anywhere.

Every request here is well signed (MAC recomputed after the change), so it is the switch's
validation that refuses it: structure before the MAC check, card content after decryption
(then the idempotency key it had claimed is released)."""

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

pytestmark = pytest.mark.e2e


def _field(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    return bad.field_violations[0].field


def _set(req, path, value):
    obj = req
    *head, last = path.split(".")
    for part in head:
        obj = getattr(obj, part)
    setattr(obj, last, value)


def _clear_card(req):
    req.card.pan = "4111111111111111"
    req.card.expiry = "2812"


CASES = [
    ("terminal_id", "", "terminal_id"),
    ("terminal_id", "T-9999", "terminal_id"),  # unknown terminal
    ("merchant_id", "M-FUEL", "merchant_id"),  # not this terminal's merchant
    ("merchant_id", "M" * 5000, "merchant_id"),  # oversize
    ("stan", 0, "stan"),
    ("local_time", "yesterday", "local_time"),
    ("amount.minor_units", 0, "amount.minor_units"),
    ("amount.minor_units", -1250, "amount.minor_units"),
    ("amount.currency", "XXX", "amount.currency"),
    ("amount.currency", "", "amount.currency"),
    ("entry_mode", 0, "entry_mode"),
    ("idempotency_key", "with spaces", "idempotency_key"),
    ("encrypted_card.ksn", b"\x00" * 11, "encrypted_card.ksn"),
    ("encrypted_card.ksn", b"\x00" * 12, "encrypted_card.ksn"),  # counter 0
    ("encrypted_card.ciphertext", b"\x01" * 17, "encrypted_card.ciphertext"),
    ("encrypted_card.ciphertext", b"", "encrypted_card.ciphertext"),
    ("pin_block", b"\x01" * 15, "pin_block"),
    ("mac", b"", "mac"),
    ("card", _clear_card, "card"),  # clear card data is refused, even next to encrypted
]

# Card content, inside a well-formed encrypted envelope: (pan, expiry, cvv2, field).
CARD_CASES = [
    ("4111111111111112", "2812", "", "encrypted_card"),  # fails Luhn
    ("4" * 40, "2812", "", "encrypted_card"),
    ("4" * 300, "2812", "", "encrypted_card.ciphertext"),  # too big to be card data
    ("4111111111111111", "2899", "", "encrypted_card"),  # month 99
    ("4111111111111111", "2812", "12", "encrypted_card"),  # CVV2 of two digits
]


async def _refused_without_trace(pos, books, req, field):
    before = await books.account("bank-a", "A-1001")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pos.authorize(req)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _field(err.value) == field
    assert "4111111111111111" not in err.value.details()
    assert (await books.account("bank-a", "A-1001")) == before
    if field != "idempotency_key":
        with pytest.raises(grpc.aio.AioRpcError) as lookup:
            await pos.stub.GetTransaction(pos.lookup_request(key=req.idempotency_key))
        assert lookup.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(("path", "value", "field"), CASES)
async def test_bad_field_is_named_and_nothing_changes(pos, books, path, value, field):
    req = pos.auth_request("4111111111111111", 1250)
    if callable(value):
        value(req)
    else:
        _set(req, path, value)
    if field not in ("encrypted_card.ksn", "mac"):
        pos.sign(req)
    await _refused_without_trace(pos, books, req, field)


@pytest.mark.parametrize(("pan", "expiry", "cvv2", "field"), CARD_CASES)
async def test_bad_card_data_is_named_and_nothing_changes(pos, books, pan, expiry, cvv2, field):
    req = pos.auth_request(pan, 1250, expiry=expiry, cvv2=cvv2)
    await _refused_without_trace(pos, books, req, field)


async def test_missing_amount_and_card(pos):
    for drop in ("amount", "encrypted_card"):
        req = pos.auth_request("4111111111111111", 100)
        req.ClearField(drop)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pos.authorize(req)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert _field(err.value) == drop


async def test_capture_unknown_transaction_is_not_found(pos):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pos.capture("0" * 32)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_capture_bad_transaction_id_is_invalid(pos):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pos.capture("not-an-id")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _field(err.value) == "transaction_id"
