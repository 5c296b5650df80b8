"""The terminal's deadline is respected when an acquirer is slower than the budget: the switch
answers 91 in time, and the reversal it queues leaves the issuer's books untouched."""

import asyncio
import time
import tomllib
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from payswitch.v1 import terminal_pb2

from .clients import Books, RawTerminal, code, node_channels
from .conftest import DEFAULT_TOPOLOGY, injected, start_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def slow_stack(tmp_path_factory, hsm_token):
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    for acq in doc["acquirers"]:
        acq["latency"] = {"distribution": "fixed", "ms": 1500}
    s = await asyncio.to_thread(start_stack, tmp_path_factory.mktemp("slow"), doc)
    channels = node_channels(s)
    yield (
        s,
        RawTerminal(channels[s.topology.switch.id], await injected()),
        Books({i.id: channels[i.id] for i in s.topology.issuers}),
    )
    for ch in channels.values():
        await ch.close()
    await asyncio.to_thread(s.stop)


async def test_slow_acquirer_answered_91_inside_the_deadline(slow_stack):
    _, pos, books = slow_stack
    before = await books.account("bank-a", "A-1001")
    req = pos.auth_request("4111111111111111", 1500)
    started = time.monotonic()
    resp = await pos.authorize(req, timeout=1.0)  # DEADLINE_EXCEEDED would raise
    elapsed = time.monotonic() - started
    assert code(resp) == "91"
    assert elapsed < 1.0
    # The reversal goes out through the (slow, but within its own timeout) acquirer.
    state = None
    for _ in range(150):  # bounded: 15 s
        state = (await pos.get(resp.transaction_id)).state
        if state == terminal_pb2.TRANSACTION_STATE_REVERSED:
            break
        await asyncio.sleep(0.1)
    assert state == terminal_pb2.TRANSACTION_STATE_REVERSED
    after = await books.account("bank-a", "A-1001")
    assert (after.balance, after.held) == (before.balance, before.held)


async def test_no_deadline_means_the_networks_two_seconds(slow_stack):
    """A terminal that sets no deadline still gets its answer within the switch's budget."""
    _, pos, _ = slow_stack
    req = pos.auth_request("4111111111111111", 100)
    started = time.monotonic()
    resp = await pos.stub.Authorize(req)  # no timeout at all
    assert time.monotonic() - started < 2.5
    assert code(resp) == "00"  # 1.5 s fits in the 2 s budget


async def test_a_terminal_that_hangs_up_does_not_strand_its_key(slow_stack):
    """A terminal that hangs up while its authorization is at the acquirer cancels only its
    call: the switch finishes the request and keeps its answer under the key, and the
    terminal's retry (the same request) gets that answer. Before, the cancelled request left
    the key held in the switch and every retry was answered ABORTED (campaign seeds 3037 and
    3042)."""
    stack, pos, _ = slow_stack
    req = pos.auth_request("4111111111111111", 200)
    call = pos.stub.Authorize(req, timeout=2.0)
    pending = None
    for _ in range(200):  # bounded: until the switch has sent it to the (slow) acquirer
        try:
            lookup = pos.lookup_request(key=req.idempotency_key)
            found = await pos.stub.GetTransaction(lookup, timeout=2.0)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
        else:
            if found.transaction.state == terminal_pb2.TRANSACTION_STATE_PENDING:
                pending = found.transaction
                break
        await asyncio.sleep(0.01)
    assert pending is not None
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    # The request goes on at the (slow) acquirer: it keeps its in-flight slot until it ends.
    assert await asyncio.to_thread(_terminal_in_flight, stack) == 1
    retry = await pos.authorize(req, timeout=2.0)
    assert code(retry) == "00"
    assert retry.transaction_id == pending.transaction_id


def _terminal_in_flight(stack) -> float:
    """The switch's ``payswitch_in_flight{kind="terminal"}`` now."""
    address = stack.metrics_address(stack.topology.switch.id)
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "payswitch_in_flight" and sample.labels.get("kind") == "terminal":
                return sample.value
    raise AssertionError("no payswitch_in_flight{kind=terminal}")
