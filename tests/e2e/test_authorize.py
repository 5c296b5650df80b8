"""End to end: terminal -> switch -> acquirer -> scheme -> issuer, every node a real process.

Balances are checked as deltas on the issuer's own books, read over its gRPC API.
"""

import asyncio

import grpc
import pytest

from payswitch.v1 import common_pb2, network_pb2, terminal_pb2

from .clients import code

pytestmark = pytest.mark.e2e


async def test_approval_places_a_hold(pos, books):
    before = await books.account("bank-a", "A-1001")
    resp = await pos.pay("4111111111111111", 1250)
    assert code(resp) == "00"
    assert len(resp.auth_code) == 6
    assert resp.masked_pan == "411111******1111"
    assert resp.scheme == common_pb2.CARD_SCHEME_VISA
    assert len(resp.rrn) == 12
    after = await books.account("bank-a", "A-1001")
    assert after.held - before.held == 1250
    assert after.balance == before.balance
    hold = await books.hold("bank-a", resp.rrn)
    assert hold.state == network_pb2.HOLD_STATE_HELD and hold.amount == 1250
    tx = await pos.get(resp.transaction_id)
    assert tx.state == terminal_pb2.TRANSACTION_STATE_APPROVED
    assert tx.masked_pan == "411111******1111"


@pytest.mark.parametrize(
    ("pan", "minor", "currency", "expiry", "iso"),
    [
        ("4000000000000002", 2000, "EUR", "2812", "51"),  # 15.00 on the account
        ("4000000000000069", 100, "EUR", "2401", "54"),  # expired
        ("4000000000000119", 100, "EUR", "2812", "05"),  # blocked
        ("5105105105105100", 100, "EUR", "2906", "05"),  # lost
        ("4242424242424242", 10001, "EUR", "2812", "61"),  # per-transaction limit 100.00
        ("4012888888881881", 100, "EUR", "2812", "14"),  # not on the issuer's file
        ("2223000048400011", 100, "GBP", "2906", "12"),  # USD account, no GBP rate to convert
    ],
)
async def test_each_decline_code(pos, books, pan, minor, currency, expiry, iso):
    resp = await pos.pay(pan, minor, currency, expiry)
    assert code(resp) == iso
    assert resp.auth_code == ""
    tx = await pos.get(resp.transaction_id)
    assert tx.state == terminal_pb2.TRANSACTION_STATE_DECLINED
    assert f"{tx.response_code - 100:02d}" == iso


async def test_every_scheme_reaches_its_issuer(pos):
    for pan, expiry, minor, currency in [
        ("5555555555554444", "2906", 500, "EUR"),
        ("378282246310005", "2903", 500, "EUR"),
        ("6011111111111117", "2903", 500, "EUR"),
        ("6200000000000005", "2903", 500, "EUR"),
        ("3530111333300000", "2903", 500, "JPY"),
    ]:
        resp = await pos.pay(pan, minor, currency, expiry)
        assert code(resp) == "00", pan[:6]


async def test_partial_capture_posts_and_releases_the_rest(pos, books):
    before = await books.account("bank-a", "A-1001")
    auth = await pos.pay("4111111111111111", 10000)
    assert code(auth) == "00"
    cap = await pos.capture(auth.transaction_id, 6000)
    assert code(cap) == "00"
    assert cap.transaction.state == terminal_pb2.TRANSACTION_STATE_CAPTURED
    assert cap.transaction.captured.minor_units == 6000
    after = await books.account("bank-a", "A-1001")
    assert after.balance - before.balance == -6000
    assert after.held == before.held
    hold = await books.hold("bank-a", auth.rrn)
    assert hold.state == network_pb2.HOLD_STATE_POSTED and hold.posted == 6000


async def test_capture_above_authorized_is_13_and_changes_nothing(pos, books):
    auth = await pos.pay("4111111111111111", 1000)
    before = await books.account("bank-a", "A-1001")
    cap = await pos.capture(auth.transaction_id, 1001)
    assert code(cap) == "13"
    assert (await books.account("bank-a", "A-1001")) == before
    assert (await pos.get(auth.transaction_id)).state == terminal_pb2.TRANSACTION_STATE_APPROVED


async def test_void_releases_the_hold(pos, books):
    before = await books.account("bank-a", "A-1001")
    auth = await pos.pay("4111111111111111", 777)
    void = await pos.void(auth.transaction_id)
    assert code(void) == "00"
    assert void.transaction.state == terminal_pb2.TRANSACTION_STATE_VOIDED
    after = await books.account("bank-a", "A-1001")
    assert (after.balance, after.held) == (before.balance, before.held)
    assert (await books.hold("bank-a", auth.rrn)).state == network_pb2.HOLD_STATE_RELEASED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pos.capture(auth.transaction_id)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_refund_credits_the_card_up_to_the_capture(pos, books):
    before = await books.account("bank-a", "A-1001")
    auth = await pos.pay("4111111111111111", 5000)
    await pos.capture(auth.transaction_id)
    first = await pos.refund(auth.transaction_id, 2000)
    assert code(first) == "00"
    assert first.transaction.type == terminal_pb2.TRANSACTION_TYPE_REFUND
    assert first.transaction.original_transaction_id == auth.transaction_id
    too_much = await pos.refund(auth.transaction_id, 3001)
    assert code(too_much) == "13"
    rest = await pos.refund(auth.transaction_id, 3000)
    assert code(rest) == "00"
    after = await books.account("bank-a", "A-1001")
    assert after.balance == before.balance  # -5000 captured, +2000 +3000 refunded
    assert after.held == before.held
    original = await pos.get(auth.transaction_id)
    assert original.refunded.minor_units == 5000


async def test_refund_of_an_uncaptured_sale_is_refused(pos):
    auth = await pos.pay("4111111111111111", 100)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pos.refund(auth.transaction_id, 100)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_retry_under_the_same_key_moves_money_once(pos, books):
    before = await books.account("bank-a", "A-1001")
    req = pos.auth_request("4111111111111111", 4321)
    first = await pos.authorize(req)
    second = await pos.authorize(req)
    assert code(first) == "00"
    assert second == first
    after = await books.account("bank-a", "A-1001")
    assert after.held - before.held == 4321


async def test_twenty_concurrent_retries_move_money_once(pos, books):
    before = await books.account("bank-a", "A-1001")
    req = pos.auth_request("4111111111111111", 2222)
    answers = await asyncio.gather(*(pos.authorize(req, timeout=5.0) for _ in range(20)))
    assert {code(a) for a in answers} == {"00"}
    assert len({a.SerializeToString() for a in answers}) == 1
    after = await books.account("bank-a", "A-1001")
    assert after.held - before.held == 2222


async def test_same_key_other_content_is_refused(pos, books):
    req = pos.auth_request("4111111111111111", 1000)
    await pos.authorize(req)
    before = await books.account("bank-a", "A-1001")
    # Same key, same STAN and card, other amount: a genuine request (new KSN, own MAC).
    other = pos.auth_request("4111111111111111", 1001, key=req.idempotency_key, stan=req.stan)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pos.authorize(other)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "idempotency_key" in err.value.details()
    assert (await books.account("bank-a", "A-1001")) == before


async def test_duplicate_transmission_without_key_is_94(pos, books):
    req = pos.auth_request("4111111111111111", 300, key=None)
    first = await pos.authorize(req)
    assert code(first) == "00"
    before = await books.account("bank-a", "A-1001")
    again = await pos.authorize(req)
    assert code(again) == "94"
    assert (await books.account("bank-a", "A-1001")) == before


async def test_capture_retry_under_same_key_posts_once(pos, books):
    auth = await pos.pay("4111111111111111", 900)
    before = await books.account("bank-a", "A-1001")
    req = pos.capture_request(auth.transaction_id, 900, key="cap-" + auth.transaction_id)
    a = await pos.stub.Capture(req, timeout=2.0)
    b = await pos.stub.Capture(req, timeout=2.0)  # a retry resends the same bytes (same KSN)
    assert code(a) == code(b) == "00"
    assert a.SerializeToString() == b.SerializeToString()
    assert pos.answer_verifies("capture", req.ksn, b)
    # The same key with a new KSN is other content: refused, nothing posted again.
    again = pos.capture_request(auth.transaction_id, 900, key="cap-" + auth.transaction_id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pos.stub.Capture(again, timeout=2.0)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    after = await books.account("bank-a", "A-1001")
    assert after.balance - before.balance == -900


async def test_echo(pos):
    resp = await pos.stub.Echo(terminal_pb2.EchoRequest(terminal_id="T-0001", message="hi"))
    assert resp.message == "hi" and resp.switch_id == "switch-1"
