"""Contract: terminal batches (open, join once, close atomically), on every backend."""

import asyncio

import pytest

from switch.domain.batches import BatchItem, BatchState, ItemKind

NOW = 1_800_000_000.0


def item(tx: str, kind: ItemKind = ItemKind.SALE, amount: int = 100, cur: str = "EUR") -> BatchItem:
    return BatchItem(tx, kind, amount, cur, "VISA", NOW)


async def test_first_batch_is_one_and_joins_land_in_it(store):
    assert await store.open_batch_no("T1", NOW) == 1
    assert await store.join_batch("T1", item("a"), NOW) == 1
    assert await store.join_batch("T1", item("b", ItemKind.REFUND, 40), NOW) == 1
    items = await store.batch_items("T1", 1)
    assert [(i.transaction_id, i.kind, i.amount_minor) for i in items] == [
        ("a", ItemKind.SALE, 100),
        ("b", ItemKind.REFUND, 40),
    ]


async def test_a_transaction_joins_once_even_after_a_close(store, open_more):
    other = await open_more()
    assert await store.join_batch("T2", item("x"), NOW) == 1
    assert await other.join_batch("T2", item("x"), NOW) == 1  # another switch, a retry
    closed = await store.close_batch("T2", NOW + 10)
    assert closed.info.batch_no == 1 and closed.info.state is BatchState.CLOSED
    assert [i.transaction_id for i in closed.items] == ["x"]
    assert await other.join_batch("T2", item("x"), NOW + 20) == 1  # still in batch 1
    assert await store.batch_items("T2", 2) == []


async def test_close_opens_the_next_and_keeps_a_record(store):
    await store.join_batch("T3", item("p"), NOW)
    first = await store.close_batch("T3", NOW + 5)
    assert first.info.batch_no == 1 and first.info.closed_at == NOW + 5
    assert await store.open_batch_no("T3", NOW + 6) == 2
    assert await store.join_batch("T3", item("q"), NOW + 7) == 2
    empty_terminal = await store.close_batch("T9", NOW)
    assert empty_terminal.info.batch_no == 1 and empty_terminal.items == ()
    second = await store.close_batch("T3", NOW + 8)
    assert second.info.batch_no == 2 and [i.transaction_id for i in second.items] == ["q"]
    log = await store.batches_of("T3")
    assert [(b.batch_no, b.state) for b in log] == [(2, BatchState.CLOSED), (1, BatchState.CLOSED)]
    await store.mark_batch_cleared("T3", 1)
    log = await store.batches_of("T3")
    assert [(b.batch_no, b.state) for b in log] == [
        (2, BatchState.CLOSED),
        (1, BatchState.CLEARED),
    ]


async def test_terminals_are_independent(store):
    await store.join_batch("TA", item("ta1"), NOW)
    await store.close_batch("TA", NOW)
    assert await store.join_batch("TB", item("tb1"), NOW) == 1
    assert await store.open_batch_no("TA", NOW) == 2


async def test_bad_items_are_refused_before_any_write(store):
    with pytest.raises(ValueError):
        await store.join_batch("T4", BatchItem("", ItemKind.SALE, 1, "EUR", "VISA", NOW), NOW)
    with pytest.raises(ValueError):
        await store.join_batch("T4", BatchItem("z", ItemKind.SALE, 1.5, "EUR", "VISA", NOW), NOW)
    assert await store.batch_items("T4", 1) == []


async def test_close_racing_joins_loses_and_doubles_nothing(store, open_more):
    """Joins from two 'switches' race a close: each transaction ends in batch 1 or 2, exactly
    once, and the closed batch's items are exactly those that say batch 1."""
    other = await open_more()
    await store.open_batch_no("TR", NOW)
    ids = [f"r{n:03d}" for n in range(24)]

    async def join(n: int, tx: str) -> tuple[str, int]:
        s = store if n % 2 else other
        return tx, await s.join_batch("TR", item(tx, amount=n + 1), NOW)

    async def close_soon():
        await asyncio.sleep(0)  # let some joins start first
        return await store.close_batch("TR", NOW + 1)

    *joined, closed = await asyncio.gather(*(join(n, t) for n, t in enumerate(ids)), close_soon())
    where = dict(joined)
    assert set(where.values()) <= {1, 2}
    assert closed.info.batch_no == 1
    in_first = sorted(t for t, b in where.items() if b == 1)
    assert sorted(i.transaction_id for i in closed.items) == in_first
    rest = await store.batch_items("TR", 2)
    assert sorted(i.transaction_id for i in rest) == sorted(t for t, b in where.items() if b == 2)
    assert len(closed.items) + len(rest) == len(ids)
    # The closed batch does not change afterwards.
    assert [i.transaction_id for i in await store.batch_items("TR", 1)] == [
        i.transaction_id for i in closed.items
    ]


async def test_concurrent_closes_close_distinct_batches(store, open_more):
    other = await open_more()
    await store.join_batch("TC", item("c1"), NOW)
    a, b = await asyncio.gather(store.close_batch("TC", NOW), other.close_batch("TC", NOW))
    assert {a.info.batch_no, b.info.batch_no} == {1, 2}
    assert sum(len(c.items) for c in (a, b)) == 1
    assert await store.open_batch_no("TC", NOW) == 3
