"""The store-and-forward queue's worker on a real SQLite store, with scripted handlers (the
network is not under test here: tests/e2e/test_saf*.py send real reversals)."""

import asyncio
import time

import pytest

from payswitch.world.topology import SafConfig
from switch.core import metrics
from switch.domain.saf import SafKind
from switch.domain.transactions import TxState
from switch.recovery.saf import NotDelivered, SafQueue
from switch.store.sqlite.store import SqliteStore
from tests.store.storekit import new_tx

FAST = SafConfig(
    max_attempts=3,
    max_age_s=600,
    base_delay_s=0.01,
    max_delay_s=0.05,
    attempt_timeout_s=0.5,
    lease_s=2.0,
    poll_interval_s=0.02,
    scan_interval_s=1.0,
    concurrency=4,
)


@pytest.fixture
async def store(tmp_path):
    s = SqliteStore(tmp_path / "switch.db", synchronous="normal")
    await s.open()
    yield s
    await s.close()


async def _tx(store) -> str:
    tx = new_tx()
    await store.insert_transaction(tx)
    return tx.id


async def _until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.01)
    return False


async def test_delivered_on_the_first_ack(store):
    seen = []

    async def handler(tx):
        seen.append(tx.id)
        return True

    q = SafQueue(store, FAST)
    q.register(SafKind.REVERSAL, handler)
    tx_id = await _tx(store)
    item = await q.enqueue(SafKind.REVERSAL, tx_id)
    assert (await q.enqueue(SafKind.REVERSAL, tx_id)).id == item.id  # idempotent
    q.start()
    try:
        assert await _until(lambda: _done(store, item.id))
    finally:
        await q.close()
    assert seen == [tx_id]
    assert await q.list_items(dead=False) == []


async def _done(store, item_id):
    item = await store.saf_get(item_id)
    return item.done


async def test_retried_with_backoff_then_dead_lettered_then_replayed(store):
    calls: list[float] = []
    healthy = False

    async def handler(_tx):
        calls.append(time.monotonic())
        if not healthy:
            raise NotDelivered("no answer from acq: UNAVAILABLE")
        return True

    metrics.reset()
    q = SafQueue(store, FAST)
    q.register(SafKind.REVERSAL, handler)
    item = await q.enqueue(SafKind.REVERSAL, await _tx(store))
    q.start()
    try:
        assert await _until(lambda: _dead(q, item.id))
        assert len(calls) == FAST.max_attempts  # no attempt after the last one
        [dead] = await q.list_items(dead=True)
        assert dead.attempts == FAST.max_attempts
        assert dead.last_error == "no answer from acq: UNAVAILABLE"
        await q.publish_depths()
        assert metrics.get().dlq_depth.labels("REVERSAL")._value.get() == 1
        assert metrics.get().saf_depth.labels("REVERSAL")._value.get() == 0
        healthy = True
        back = await q.replay(item.id)
        assert back.attempts == 0 and not back.dead
        assert await _until(lambda: _done(store, item.id))
        assert len(calls) == FAST.max_attempts + 1
        await q.publish_depths()
        assert metrics.get().dlq_depth.labels("REVERSAL")._value.get() == 0
    finally:
        await q.close()
    with pytest.raises(KeyError):
        await q.replay("REVERSAL:nope")
    with pytest.raises(ValueError):
        await q.replay(item.id)


async def _dead(q, item_id):
    return any(i.id == item_id for i in await q.list_items(dead=True))


async def test_items_of_a_kind_without_handler_wait(store):
    q = SafQueue(store, FAST)
    item = await q.enqueue(SafKind.ADVICE, await _tx(store))
    assert await q.run_once() == 0
    stored = await store.saf_get(item.id)
    assert stored.attempts == 0 and stored.leased_by == ""
    await q.publish_depths()
    assert metrics.get().saf_depth.labels("ADVICE")._value.get() == 1


async def test_two_workers_on_one_store_send_an_item_once(tmp_path, store):
    other_store = SqliteStore(tmp_path / "switch.db", synchronous="normal")
    await other_store.open()
    started = asyncio.Event()
    release = asyncio.Event()
    calls = []

    async def handler(tx):
        calls.append(tx.id)
        started.set()
        await release.wait()
        return True

    a, b = SafQueue(store, FAST), SafQueue(other_store, FAST)
    a.register(SafKind.REVERSAL, handler)
    b.register(SafKind.REVERSAL, handler)
    try:
        item = await a.enqueue(SafKind.REVERSAL, await _tx(store))
        assert await a.run_once() == 1
        await asyncio.wait_for(started.wait(), 5)
        await b.run_once()  # sees the item due, but cannot take the lease
        await b.drain(5)
        release.set()
        assert await a.drain(5)
        assert calls == [item.transaction_id]
        assert (await store.saf_get(item.id)).done
    finally:
        await a.close()
        await b.close()
        await other_store.close()


async def test_a_dead_workers_lease_lapses_and_another_sends(tmp_path, store):
    from switch.domain.saf import take_lease

    q = SafQueue(store, FAST)
    sent = []

    async def handler(tx):
        sent.append(tx.id)
        return True

    q.register(SafKind.REVERSAL, handler)
    item = await q.enqueue(SafKind.REVERSAL, await _tx(store))
    now = time.time()
    assert await store.saf_update(item.id, take_lease("crashed", now + 0.3, now))
    assert await q.run_once() == 1
    await q.drain(5)
    assert sent == []  # the crashed worker's lease still holds
    assert await _until(lambda: _sent_after_pass(q, sent))
    assert sent == [item.transaction_id]


async def _sent_after_pass(q, sent):
    await q.run_once()
    await q.drain(5)
    return bool(sent)


async def test_handler_gets_the_transaction(store):
    tx = new_tx(deadline_at=time.time() - 1)
    await store.insert_transaction(tx)
    await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING)
    got = []

    async def handler(t):
        got.append(t.state)
        return True

    q = SafQueue(store, FAST)
    q.register(SafKind.REVERSAL, handler)
    await q.enqueue(SafKind.REVERSAL, tx.id)
    await q.run_once()
    await q.drain(5)
    assert got == [TxState.PENDING]


async def test_attempts_take_at_most_the_background_share_of_the_limit(store):
    """Reversals after an overload: with the admission gate's limit at 8 and a share of 0.25,
    at most 2 attempts run at once (the queue's own concurrency is 4), each counted against the
    terminals' limit, and every item is still delivered."""
    from switch.core.concurrency import Gate, LimitSettings

    gate = Gate(LimitSettings(initial=8, minimum=8, maximum=8, background_share=0.25))
    running = peak = slots_peak = 0
    release = asyncio.Event()

    async def handler(tx):
        nonlocal running, peak, slots_peak
        running += 1
        peak = max(peak, running)
        slots_peak = max(slots_peak, gate.background)
        await release.wait()
        running -= 1
        return True

    q = SafQueue(store, FAST)
    q.share(gate)
    q.register(SafKind.REVERSAL, handler)
    items = [await q.enqueue(SafKind.REVERSAL, await _tx(store)) for _ in range(6)]
    q.start()
    try:

        async def two_running():
            return running == 2

        assert await _until(two_running)
        assert sum(gate.try_enter() for _ in range(8)) == 6  # terminals keep the rest
        release.set()

        async def all_done():
            return all([await _done(store, i.id) for i in items])

        assert await _until(all_done)
    finally:
        await q.close()
    assert peak == 2 and slots_peak == 2 and gate.background == 0
