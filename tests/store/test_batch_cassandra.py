"""Cassandra batches in bounded partitions (migration 014, issue 17): each batch is its own
partition, the open-batch hint only ever costs reads, and a batch whose closer died between the
close and its record is recorded by the next reader that walks past it (so it is cleared)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import cassandra_kit
import pytest

from switch.domain.batches import BatchItem, BatchState, ItemKind
from switch.store import open_store
from switch.store.cassandra.batches import shard_of
from switch.store.cassandra.store import CassandraStore

NOW = 1_800_000_000.0


def item(tx: str) -> BatchItem:
    return BatchItem(tx, ItemKind.SALE, 100, "EUR", "visa", NOW)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CassandraStore]:
    async with open_store(cassandra_kit.contract_url(tmp_path)) as s:
        assert isinstance(s, CassandraStore)
        yield s


async def test_each_batch_is_its_own_partition(store: CassandraStore) -> None:
    await store.join_batch("TP", item("p1"), NOW)
    await store.close_batch("TP", NOW + 1)
    await store.join_batch("TP", item("p2"), NOW + 2)
    session, ks = cassandra_kit.inspect()
    select = f"SELECT terminal_id, batch_no, transaction_id FROM {ks}.batch_members"  # noqa: S608
    rows = list(session.execute(select))
    assert sorted((r.batch_no, r.transaction_id) for r in rows if r.terminal_id == "TP") == [
        (1, "p1"),
        (2, "p2"),
    ]


async def test_a_lost_hint_and_a_lost_record_are_found_by_walking(store: CassandraStore) -> None:
    await store.join_batch("TW", item("w1"), NOW)
    await store.close_batch("TW", NOW + 1)
    await store.close_batch("TW", NOW + 2)  # an empty batch 2
    session, ks = cassandra_kit.inspect()
    # As if the closer of batch 2 died right after its close: no record, no listing, no hint.
    for table, where in (
        ("batch_record", "terminal_id = 'TW' AND batch_no = 2"),
        ("batches_to_clear", f"shard = {shard_of('TW')} AND terminal_id = 'TW' AND batch_no = 2"),
        ("batch_open_hint", "terminal_id = 'TW'"),
    ):
        session.execute(f"DELETE FROM {ks}.{table} WHERE {where}")  # noqa: S608
    assert await store.open_batch_no("TW", NOW + 3) == 3  # walked 1 -> 2 -> 3
    mine = [(b.batch_no, b.state) for b in await store.closed_batches(100) if b.terminal_id == "TW"]
    assert sorted(mine) == [(1, BatchState.CLOSED), (2, BatchState.CLOSED)]
    assert await store.join_batch("TW", item("w1"), NOW + 4) == 1  # joined once, still in 1
    assert await store.join_batch("TW", item("w3"), NOW + 4) == 3
    assert [b.batch_no for b in await store.batches_of("TW")] == [2, 1]
