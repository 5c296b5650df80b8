"""Overload end to end on a real switch process with the adaptive admission gate: a burst far
above the concurrency limit is answered RESOURCE_EXHAUSTED at once (nothing recorded, no hold
at the issuer), a request whose deadline cannot cover the expected wait is refused at once too,
the requests within the limit are served, and right after the burst the switch serves normally
again. The operator's gauges and refusal counters say what happened."""

import asyncio
import time
import tomllib
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .clients import Books, RawTerminal, code, node_channels
from .conftest import DEFAULT_TOPOLOGY, injected, start_stack

pytestmark = pytest.mark.e2e

SLOW_MS = 400  # acq-alpha's latency: requests hold their slots this long
LIMIT = 4
BURST = 20
CARD = "4111111111111111"


@pytest.fixture(scope="module")
async def overload_stack(tmp_path_factory, hsm_token):
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    doc["switch"].update(
        admission="adaptive",
        max_in_flight=LIMIT,
        limit_initial=LIMIT,
        limit_min=2,
        queue_ms=100,
    )
    for acq in doc["acquirers"]:
        if acq["id"] == "acq-alpha":
            acq["latency"] = {"distribution": "fixed", "ms": SLOW_MS}
    s = await asyncio.to_thread(start_stack, tmp_path_factory.mktemp("overload"), doc)
    channels = node_channels(s)
    yield (
        s,
        RawTerminal(channels[s.topology.switch.id], await injected()),
        Books({i.id: channels[i.id] for i in s.topology.issuers}),
    )
    for ch in channels.values():
        await ch.close()
    await asyncio.to_thread(s.stop)


def _samples(address: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def _timed(coro):
    started = time.monotonic()
    try:
        return await coro, time.monotonic() - started
    except grpc.aio.AioRpcError as exc:
        return exc, time.monotonic() - started


async def _in_flight(address: str, n: int, timeout: float = 10.0) -> bool:
    """Polls the gauge until the switch works on ``n`` terminal RPCs."""
    deadline = time.monotonic() + timeout
    key = ("payswitch_in_flight", (("kind", "terminal"),))
    while time.monotonic() < deadline:
        if (await asyncio.to_thread(_samples, address)).get(key) == n:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_excess_is_refused_at_once_and_service_recovers(overload_stack):
    stack, pos, books = overload_stack
    metrics_at = stack.metrics_address(stack.topology.switch.id)
    # Two sequential sales teach the gate how long a slot is held (~SLOW_MS).
    for _ in range(2):
        assert code(await pos.pay(CARD, 100)) == "00"
    before = await books.account("bank-a", "A-1001")

    reqs = [pos.auth_request(CARD, 100) for _ in range(BURST)]
    burst = [asyncio.ensure_future(_timed(pos.authorize(r, timeout=2.0))) for r in reqs]
    assert await _in_flight(metrics_at, LIMIT)
    # Its deadline cannot cover a typical service time after any wait: refused at once.
    short = pos.auth_request(CARD, 100)
    refused, elapsed = await _timed(pos.authorize(short, timeout=0.25))
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "expected wait" in refused.details() and elapsed < SLOW_MS / 1000 / 2
    results = await asyncio.gather(*burst)

    answered = [(q, r) for q, (r, _) in zip(reqs, results, strict=True) if not _err(r)]
    shed = [(q, r, t) for q, (r, t) in zip(reqs, results, strict=True) if _err(r)]
    assert LIMIT <= len(answered) <= LIMIT + 1  # one may fit in the queue behind the limit
    for _, resp in answered:
        assert code(resp) == "00"
    assert len(shed) >= BURST - LIMIT - 1
    at_once = [t for _, exc, t in shed if "expected wait" in exc.details()]
    for _, exc, _t in shed:
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "overloaded" in exc.details()
    assert len(at_once) >= BURST - LIMIT - 2
    assert max(at_once) < SLOW_MS / 1000 / 2  # answered at once, not after a slot freed
    # Nothing of a refused request was touched: no record under its key, no hold.
    for q in [short] + [q for q, _, _ in shed[:3]]:
        assert await _lookup(pos, q.idempotency_key) == grpc.StatusCode.NOT_FOUND
    after = await books.account("bank-a", "A-1001")
    assert after.held - before.held == 100 * len(answered)

    # Recovery: the next sales are served at the normal latency.
    for _ in range(3):
        resp, took = await _timed(pos.pay(CARD, 100))
        assert code(resp) == "00" and took < SLOW_MS / 1000 * 2

    m = await asyncio.to_thread(_samples, metrics_at)
    assert m[("payswitch_shed_total", (("reason", "expected_wait"),))] >= len(at_once) + 1
    assert m[("payswitch_concurrency_limit", ())] == LIMIT
    assert m[("payswitch_in_flight", (("kind", "terminal"),))] == 0
    assert m[("payswitch_admission_queue", ())] == 0


def _err(r) -> bool:
    return isinstance(r, grpc.aio.AioRpcError)


async def _lookup(pos: RawTerminal, key: str) -> grpc.StatusCode:
    try:
        await pos.stub.GetTransaction(pos.lookup_request(key=key), timeout=2.0)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK
