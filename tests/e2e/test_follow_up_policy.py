"""The follow-up policy under ``same_merchant`` (real processes): a merchant whose topology
entry says ``follow_ups = "same_merchant"`` lets any of its terminals void, capture or refund
another's sale (each request MAC'd under the acting terminal's own DUKPT key), while a terminal
of another merchant still finds nothing. The default, ``same_terminal``, refuses it:
``test_operation_macs.py``."""

import asyncio
import tomllib

import grpc
import pytest

from .clients import RawTerminal, code, switch_channel
from .conftest import DEFAULT_TOPOLOGY, injected, start_stack

pytestmark = pytest.mark.e2e

PAN = "4111111111111111"


@pytest.fixture(scope="module")
async def shared_stack(tmp_path_factory, hsm_token):
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    for merchant in doc["merchants"]:
        if merchant["id"] == "M-GROCER":
            merchant["follow_ups"] = "same_merchant"
    assert doc["switch"]["follow_ups"] == "same_terminal"  # the override is the merchant's
    stack = await asyncio.to_thread(start_stack, tmp_path_factory.mktemp("policy"), doc)
    try:
        yield stack
    finally:
        await asyncio.to_thread(stack.stop)


async def _terminal(stack, terminal_id: str, merchant_id: str = "M-GROCER") -> RawTerminal:
    return RawTerminal(
        switch_channel(stack, terminal_id), await injected(), terminal_id, merchant_id
    )


async def test_any_terminal_of_the_merchant_may_follow_up_under_same_merchant(shared_stack):
    first = await _terminal(shared_stack, "T-0001")
    second = await _terminal(shared_stack, "T-0002")
    stranger = await _terminal(shared_stack, "T-0003", "M-FUEL")
    try:
        to_void = await first.pay(PAN, 510)
        to_capture = await first.pay(PAN, 520)
        assert code(to_void) == code(to_capture) == "00"

        for call, req in (
            (stranger.stub.Void, stranger.void_request(to_void.transaction_id)),
            (stranger.stub.Capture, stranger.capture_request(to_capture.transaction_id)),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(req, timeout=2.0)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND

        void = second.void_request(to_void.transaction_id)
        voided = await second.stub.Void(void, timeout=2.0)
        assert code(voided) == "00" and voided.transaction.state == 10  # VOIDED
        assert second.answer_verifies("void", void.ksn, voided)

        captured = await second.capture(to_capture.transaction_id)
        assert code(captured) == "00"
        refunded = await second.refund(to_capture.transaction_id, 100)
        assert code(refunded) == "00"
        assert refunded.transaction.terminal_id == "T-0002"
        assert (await first.get(to_capture.transaction_id)).refunded.minor_units == 100
    finally:
        for t in (first, second, stranger):
            await t.channel.close()
