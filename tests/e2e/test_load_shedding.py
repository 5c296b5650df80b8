"""Load shedding end to end: above the in-flight bound, and above a terminal's rate, the switch
answers RESOURCE_EXHAUSTED at once and touches nothing (no hold at the issuer, no record under
the idempotency key)."""

import asyncio
import time
import tomllib

import grpc
import pytest

from payswitch.v1 import terminal_pb2

from .clients import Books, RawTerminal, code, node_channels
from .conftest import DEFAULT_TOPOLOGY, injected, start_stack

pytestmark = pytest.mark.e2e

SLOW_MS = 400


@pytest.fixture(scope="module")
async def shedding_stack(tmp_path_factory, hsm_token):
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    # Fixed admission: exactly max_in_flight at once, no queue (the adaptive limit and its
    # queue have their own test, test_overload.py).
    doc["switch"].update(
        max_in_flight=2, terminal_burst=3, terminal_rate_per_s=1, admission="fixed"
    )
    # acq-alpha (M-GROCER's first choice) is slow so requests stay in flight; acq-beta (the
    # only acquirer of M-FUEL) stays fast so a burst fits well inside one refill second.
    for acq in doc["acquirers"]:
        if acq["id"] == "acq-alpha":
            acq["latency"] = {"distribution": "fixed", "ms": SLOW_MS}
    s = await asyncio.to_thread(
        start_stack, tmp_path_factory.mktemp("shedding"), doc, store="sqlite"
    )
    channels = node_channels(s)
    switch = channels[s.topology.switch.id]
    se = await injected()
    yield (
        RawTerminal(switch, se),  # T-0001 at M-GROCER: slow acquirer
        # fast acquirer; a channel of its own (T-0003's certificate)
        RawTerminal.connect(s, await injected(), terminal_id="T-0003", merchant_id="M-FUEL"),
        Books({i.id: channels[i.id] for i in s.topology.issuers}),
    )
    for ch in channels.values():
        await ch.close()
    await asyncio.to_thread(s.stop)


async def _echo(pos: RawTerminal) -> None:
    """Warms the channel (Echo is exempt from shedding) so timings measure the switch only."""
    await pos.stub.Echo(
        terminal_pb2.EchoRequest(terminal_id=pos.terminal_id, message="hi"), timeout=2.0
    )


async def _timed_authorize(pos: RawTerminal, req):
    started = time.monotonic()
    try:
        return await pos.authorize(req), time.monotonic() - started
    except grpc.aio.AioRpcError as exc:
        return exc, time.monotonic() - started


async def _lookup_by_key(pos: RawTerminal, key: str) -> grpc.StatusCode:
    try:
        await pos.stub.GetTransaction(pos.lookup_request(key=key), timeout=2.0)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_above_max_in_flight_is_refused_at_once(shedding_stack):
    pos, _, books = shedding_stack
    await _echo(pos)
    before = await books.account("bank-a", "A-1001")
    reqs = [pos.auth_request("4111111111111111", 100) for _ in range(6)]
    results = await asyncio.gather(*(_timed_authorize(pos, r) for r in reqs))

    answered = [
        (req, r) for req, (r, _) in zip(reqs, results, strict=True) if not isinstance(r, Exception)
    ]
    shed = [
        (req, r, t) for req, (r, t) in zip(reqs, results, strict=True) if isinstance(r, Exception)
    ]
    assert len(answered) == 2 and len(shed) == 4
    for _, resp in answered:
        assert code(resp) == "00"
    for req, exc, elapsed in shed:
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "overloaded" in exc.details()
        assert elapsed < SLOW_MS / 1000 / 2  # answered at once, not queued
        assert await _lookup_by_key(pos, req.idempotency_key) == grpc.StatusCode.NOT_FOUND

    after = await books.account("bank-a", "A-1001")
    assert after.held - before.held == 200  # holds for the two answered only
    for _, resp in answered:
        assert (await books.hold("bank-a", resp.rrn)).amount == 100
    # Slots are given back: the next request is served.
    assert code(await pos.pay("4111111111111111", 100)) == "00"


async def test_a_terminal_over_its_burst_is_refused_and_nothing_changes(shedding_stack):
    _, pos, books = shedding_stack
    await _echo(pos)
    for _ in range(3):
        assert code(await pos.pay("4111111111111111", 100)) == "00"
    before = await books.account("bank-a", "A-1001")
    req = pos.auth_request("4111111111111111", 100)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pos.authorize(req)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rate limit" in err.value.details() and "burst 3" in err.value.details()
    # GetTransaction is not rate limited, and finds nothing under the refused request's key.
    assert await _lookup_by_key(pos, req.idempotency_key) == grpc.StatusCode.NOT_FOUND
    after = await books.account("bank-a", "A-1001")
    assert (after.balance, after.held) == (before.balance, before.held)
