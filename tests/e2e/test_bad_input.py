"""Bad input gets INVALID_ARGUMENT naming the field, and changes no state anywhere."""

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from payswitch.v1 import terminal_pb2

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
    ("card.pan", "4111111111111112", "card.pan"),  # fails Luhn
    ("card.pan", "4" * 300, "card.pan"),
    ("card.expiry", "2899", "card.expiry"),
    ("entry_mode", 0, "entry_mode"),
    ("idempotency_key", "with spaces", "idempotency_key"),
]


@pytest.mark.parametrize(("path", "value", "field"), CASES)
async def test_bad_field_is_named_and_nothing_changes(pos, books, path, value, field):
    req = pos.auth_request("4111111111111111", 1250)
    _set(req, path, value)
    before = await books.account("bank-a", "A-1001")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pos.authorize(req)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _field(err.value) == field
    assert "4111111111111111" not in err.value.details()
    assert (await books.account("bank-a", "A-1001")) == before
    if field != "idempotency_key":
        with pytest.raises(grpc.aio.AioRpcError) as lookup:
            await pos.stub.GetTransaction(
                terminal_pb2.GetTransactionRequest(
                    terminal_id="T-0001", idempotency_key=req.idempotency_key
                )
            )
        assert lookup.value.code() == grpc.StatusCode.NOT_FOUND


async def test_missing_amount_and_card(pos):
    for drop in ("amount", "card"):
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
