"""MACs on every money-moving request and on every answer, end to end (real processes, real
SoftHSM, both stores): Capture, Void, Refund and CloseBatch without a MAC, with a wrong MAC, or
under a KSN their device has used already are refused with nothing changed (no state, no key,
no money, no batch closed); every answer of the real switch carries a response MAC that
verifies under the request KSN's response key; a sale of another terminal of the merchant is
refused under the default ``same_terminal`` policy; a stale ``local_time`` is refused; a device
near the end of its counter is told to re-key, and one past it is refused."""

import datetime as dt

import grpc
import pytest

from hsm.dukpt import LAST_COUNTER, Ksn
from payswitch.v1 import terminal_pb2
from switch.domain.devices import REKEY_AT

from .clients import RawTerminal, code, new_key
from .conftest import injected

pytestmark = pytest.mark.e2e

PAN = "4111111111111111"
APPROVED = terminal_pb2.TRANSACTION_STATE_APPROVED
CAPTURED = terminal_pb2.TRANSACTION_STATE_CAPTURED


async def _sale(pos: RawTerminal, minor: int) -> terminal_pb2.AuthorizeResponse:
    auth = await pos.pay(PAN, minor)
    assert code(auth) == "00", auth.message
    return auth


async def _refused(call, req, status: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(req, timeout=2.0)
    assert err.value.code() == status, err.value.details()
    return err.value.details() or ""


async def _no_key(pos: RawTerminal, key: str) -> None:
    """Nothing is left under ``key``: the refused request held and recorded nothing."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pos.stub.GetTransaction(pos.lookup_request(key=key), timeout=2.0)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def _requests(pos: RawTerminal, auth, captured) -> dict:
    """One request of each MAC'd follow-up, signed (fresh KSN each)."""
    return {
        "capture": (pos.stub.Capture, pos.capture_request(auth.transaction_id, 300)),
        "void": (pos.stub.Void, pos.void_request(auth.transaction_id)),
        "refund": (pos.stub.Refund, pos.refund_request(captured.transaction_id, 100)),
        "close_batch": (pos.stub.CloseBatch, pos.close_request()),
    }


async def _unchanged(pos, books, auth, captured, before) -> None:
    assert (await pos.get(auth.transaction_id)).state == APPROVED
    cap = await pos.get(captured.transaction_id)
    assert cap.state == CAPTURED and cap.refunded.minor_units == 0
    assert await books.account("bank-a", "A-1001") == before


async def test_follow_ups_without_a_mac_or_with_a_wrong_one_change_nothing(pos, books):
    auth = await _sale(pos, 310)
    captured = await _sale(pos, 320)
    assert code(await pos.capture(captured.transaction_id)) == "00"
    before = await books.account("bank-a", "A-1001")
    batch = (await pos.stub.CloseBatch(pos.close_request(), timeout=5.0)).batch_number

    for name, (call, req) in _requests(pos, auth, captured).items():
        bare = type(req)()
        bare.CopyFrom(req)
        bare.ClearField("ksn")
        bare.ClearField("mac")
        details = await _refused(call, bare, grpc.StatusCode.INVALID_ARGUMENT)
        assert details.startswith("ksn"), (name, details)

        no_mac = type(req)()
        no_mac.CopyFrom(req)
        no_mac.ClearField("mac")
        details = await _refused(call, no_mac, grpc.StatusCode.INVALID_ARGUMENT)
        assert details.startswith("mac"), (name, details)

        wrong = type(req)()
        wrong.CopyFrom(req)
        wrong.mac = bytes([req.mac[0] ^ 1]) + req.mac[1:]
        await _refused(call, wrong, grpc.StatusCode.UNAUTHENTICATED)

        altered = type(req)()  # a field changed after the MAC was computed
        altered.CopyFrom(req)
        altered.idempotency_key = new_key()
        await _refused(call, altered, grpc.StatusCode.UNAUTHENTICATED)

        await _no_key(pos, req.idempotency_key)
        await _no_key(pos, altered.idempotency_key)
        await _unchanged(pos, books, auth, captured, before)

    # No batch was closed by any of them; the untouched originals still go through.
    assert (await pos.stub.CloseBatch(pos.close_request(), timeout=5.0)).batch_number == batch + 1
    assert code(await pos.void(auth.transaction_id)) == "00"


async def test_follow_ups_under_a_used_ksn_are_refused_with_nothing_changed(pos, books):
    auth = await _sale(pos, 330)
    captured = await _sale(pos, 340)
    assert code(await pos.capture(captured.transaction_id)) == "00"
    before = await books.account("bank-a", "A-1001")
    batch = (await pos.stub.CloseBatch(pos.close_request(), timeout=5.0)).batch_number
    used = pos.se.transaction_at(pos.se.counter)  # the KSN the batch close just used

    for name, (call, req) in _requests(pos, auth, captured).items():
        pos.sign_op(req, used)  # re-MACed under the used KSN: authentic, but a replay
        details = await _refused(call, req, grpc.StatusCode.INVALID_ARGUMENT)
        assert details.startswith("ksn"), (name, details)
        await _no_key(pos, req.idempotency_key)
        await _unchanged(pos, books, auth, captured, before)

    assert (await pos.stub.CloseBatch(pos.close_request(), timeout=5.0)).batch_number == batch + 1


async def test_every_answer_verifies_and_a_same_bytes_retry_gets_the_same_answer(pos):
    req = pos.auth_request(PAN, 350)
    auth = await pos.authorize(req)
    assert code(auth) == "00"
    assert pos.answer_verifies("authorize", req.encrypted_card.ksn, auth)
    assert not auth.rekey_required
    again = await pos.authorize(req)  # the same bytes: the kept answer, same MAC
    assert again.SerializeToString() == auth.SerializeToString()

    answers = []
    cap = pos.capture_request(auth.transaction_id, 350)
    answers.append(("capture", cap, pos.stub.Capture))
    answers.append(("refund", pos.refund_request(auth.transaction_id, 50), pos.stub.Refund))
    answers.append(("close_batch", pos.close_request(), pos.stub.CloseBatch))
    for name, request, call in answers:
        resp = await call(request, timeout=5.0)
        assert code(resp) == "00", (name, resp.message)
        assert pos.answer_verifies(name, request.ksn, resp), name
        assert not pos.answer_verifies(name, request.ksn, _tampered(resp)), name
        retried = await call(request, timeout=5.0)
        assert retried.SerializeToString() == resp.SerializeToString(), name

    sale = await _sale(pos, 360)
    void = pos.void_request(sale.transaction_id)
    resp = await pos.stub.Void(void, timeout=2.0)
    assert code(resp) == "00"
    assert pos.answer_verifies("void", void.ksn, resp)
    # A MAC of one operation's answer never passes for another's.
    assert not pos.answer_verifies("capture", void.ksn, resp)


def _tampered(resp):
    out = type(resp)()
    out.CopyFrom(resp)
    out.message = out.message + "!"
    return out


async def test_another_terminals_sale_is_refused_under_same_terminal(stack, pos, books):
    auth = await _sale(pos, 370)
    other = RawTerminal.connect(stack, await injected(), terminal_id="T-0002")
    try:
        before = await books.account("bank-a", "A-1001")
        for call, req in (
            (other.stub.Void, other.void_request(auth.transaction_id)),
            (other.stub.Capture, other.capture_request(auth.transaction_id)),
        ):
            details = await _refused(call, req, grpc.StatusCode.PERMISSION_DENIED)
            assert details.startswith("transaction_id"), details
        assert (await pos.get(auth.transaction_id)).state == APPROVED
        assert await books.account("bank-a", "A-1001") == before
    finally:
        await other.channel.close()
    assert code(await pos.void(auth.transaction_id)) == "00"  # its own terminal may


async def test_a_stale_local_time_is_refused_with_nothing_recorded(pos, books):
    before = await books.account("bank-a", "A-1001")
    stale = (dt.datetime.now() - dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S")
    req = pos.auth_request(PAN, 380)
    req.local_time = stale
    pos.sign(req)
    details = await _refused(pos.stub.Authorize, req, grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("local_time"), details
    await _no_key(pos, req.idempotency_key)

    sale = await _sale(pos, 390)
    assert code(await pos.capture(sale.transaction_id)) == "00"
    refund = pos.refund_request(sale.transaction_id, 90)
    refund.local_time = (dt.datetime.now() + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
    pos.sign_op(refund)
    details = await _refused(pos.stub.Refund, refund, grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("local_time"), details
    assert (await pos.get(sale.transaction_id)).refunded.minor_units == 0
    after = await books.account("bank-a", "A-1001")
    assert after.balance - before.balance == -390


async def test_a_device_near_the_end_of_its_counter_is_told_to_rekey(stack, pos):
    se = await injected()
    se.counter = REKEY_AT - 1  # a device that has used nearly all its counters
    term = RawTerminal(pos.channel, se)
    req = term.auth_request(PAN, 400)
    assert Ksn.from_bytes(req.encrypted_card.ksn).counter >= REKEY_AT
    auth = await term.authorize(req)
    assert code(auth) == "00"
    assert auth.rekey_required
    assert term.answer_verifies("authorize", req.encrypted_card.ksn, auth)
    void = term.void_request(auth.transaction_id)
    resp = await term.stub.Void(void, timeout=2.0)
    assert code(resp) == "00" and resp.rekey_required
    assert term.answer_verifies("void", void.ksn, resp)
    log = stack.log_path(stack.topology.switch.id).read_text()
    assert "dukpt_rekey_required" in log

    # Past the last counter: refused, nothing recorded.
    past = term.auth_request(PAN, 410)
    past.encrypted_card.ksn = se.ikid + (LAST_COUNTER + 1).to_bytes(4, "big")
    details = await _refused(pos.stub.Authorize, past, grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("encrypted_card.ksn") and "exhausted" in details, details
    await _no_key(pos, past.idempotency_key)


async def test_a_lookup_is_maced_both_ways(pos):
    sale = await _sale(pos, 420)
    req = pos.lookup_request(sale.transaction_id)
    resp = await pos.stub.GetTransaction(req, timeout=2.0)
    assert resp.transaction.state == APPROVED
    assert pos.answer_verifies("get_transaction", req.ksn, resp)
    assert not pos.answer_verifies("get_transaction", req.ksn, _tampered_tx(resp))

    bare = pos.lookup_request(sale.transaction_id)
    bare.ClearField("ksn")
    bare.ClearField("mac")
    details = await _refused(pos.stub.GetTransaction, bare, grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("ksn"), details
    wrong = pos.lookup_request(sale.transaction_id)
    wrong.transaction_id = "0" * 32  # another lookup than the one MAC'd
    await _refused(pos.stub.GetTransaction, wrong, grpc.StatusCode.UNAUTHENTICATED)
    await _refused(pos.stub.GetTransaction, req, grpc.StatusCode.INVALID_ARGUMENT)  # used KSN


def _tampered_tx(resp):
    out = type(resp)()
    out.CopyFrom(resp)
    out.transaction.amount.minor_units += 1
    return out
