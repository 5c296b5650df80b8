"""DUKPT replay, end to end (real processes, both stores): a request re-MACed under a KSN its
device has used already, even with a new STAN and a new idempotency key, and a device's KSN
sent by another terminal on that terminal's own certificate, are refused INVALID_ARGUMENT
naming ``encrypted_card.ksn``, with nothing recorded and no money moved. A resend of the very
same transmission still answers 94 (``test_authorize.py``)."""

import grpc
import pytest

from payswitch.v1 import terminal_pb2

from .clients import RawTerminal, code, new_key, next_stan
from .conftest import injected

pytestmark = pytest.mark.e2e

PAN = "4111111111111111"


async def _refused(terminal: RawTerminal, req: terminal_pb2.AuthorizeRequest) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await terminal.authorize(req)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return err.value.details() or ""


async def _no_transaction_under(terminal: RawTerminal, key: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await terminal.stub.GetTransaction(terminal.lookup_request(key=key), timeout=2.0)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_request_re_maced_under_a_used_ksn_is_refused_with_nothing_recorded(pos, books):
    req = pos.auth_request(PAN, 710)
    assert code(await pos.authorize(req)) == "00"
    before = await books.account("bank-a", "A-1001")

    replay = terminal_pb2.AuthorizeRequest()
    replay.CopyFrom(req)
    replay.stan = next_stan()  # a new transmission, re-MACed under the same KSN
    replay.idempotency_key = new_key()
    pos.sign(replay)
    assert "encrypted_card.ksn" in await _refused(pos, replay)
    assert await books.account("bank-a", "A-1001") == before
    await _no_transaction_under(pos, replay.idempotency_key)

    # The terminal's next request, under a new KSN, goes through as ever.
    assert code(await pos.pay(PAN, 711)) == "00"


async def test_a_devices_ksn_sent_by_another_terminal_is_refused(stack, pos, books):
    assert code(await pos.pay(PAN, 720)) == "00"  # the device is T-0001's
    other = RawTerminal.connect(stack, pos.se, terminal_id="T-0002")  # its own certificate
    try:
        before = await books.account("bank-a", "A-1001")
        req = other.auth_request(PAN, 721)  # T-0001's device, the next KSN, signed
        assert "encrypted_card.ksn" in await _refused(other, req)
        assert await books.account("bank-a", "A-1001") == before
        # Looked up by T-0002 with a device of its own (T-0001's is refused to it).
        checker = RawTerminal(other.channel, await injected(), "T-0002")
        await _no_transaction_under(checker, req.idempotency_key)
    finally:
        await other.channel.close()
