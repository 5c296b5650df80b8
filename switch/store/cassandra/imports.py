"""Bulk load on the Cassandra store (see ``switch.store.imports``): concurrent plain writes.

Every cell is written ``USING TIMESTAMP 1`` (microseconds), older than any live write: a
live write (a compare-and-set's lightweight transaction, an index clean-up) wins over it, and
importing a page again changes nothing that moved since. Per transaction: its row, its
duplicate-transmission key, its by-state entry and (a refund) its by-original entry; per
(state, minute) one bucket marker at the current time (``switch.store.cassandra.index``), so
a scan finds the entries. Batch items go to the terminal's open batch's partition
(``batch_members``, read or opened once per terminal), skipping a transaction that is in that
batch or the ``REJOIN_LOOKBACK`` batches before it (as ``join_batch`` does). Writes go in
unlogged batches (one round trip for several rows: rows of one partition together, up to
``PARTITION_BATCH``, other rows ``BATCH`` at a time), at most ``IN_FLIGHT`` outstanding, so
memory stays bounded by the page.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from cassandra.query import BatchStatement, BatchType

from switch.domain.batches import BatchItem, ItemKind, check_item
from switch.domain.transactions import COLUMNS, Transaction, TxType, check_new
from switch.store.batches import BatchStore
from switch.store.cassandra.batches import REJOIN_LOOKBACK
from switch.store.cassandra.cql import tx_values
from switch.store.cassandra.host import CassandraHost
from switch.store.cassandra.index import bucket_of
from switch.store.imports import ImportStore

IN_FLIGHT = 32  # batches outstanding at once
BATCH = 16  # rows of different partitions per unlogged batch (a few KiB: below the warn size)
PARTITION_BATCH = 100  # rows of one partition per unlogged batch

_STATEMENTS = {
    "tx": (
        f"INSERT INTO transactions ({', '.join(COLUMNS)}, writers) "  # noqa: S608
        f"VALUES ({', '.join('?' * len(COLUMNS))}, ?) USING TIMESTAMP 1"
    ),
    "dup": (
        "INSERT INTO transmissions (terminal_id, local_date, stan, transaction_id, writer, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP 1"
    ),
    "idx": (
        "INSERT INTO transactions_by_state (state, bucket, deadline_at, id) VALUES (?, ?, ?, ?) "
        "USING TIMESTAMP 1"
    ),
    "marker": (
        "INSERT INTO transaction_state_buckets (state, bucket) VALUES (?, ?) USING TIMESTAMP ?"
    ),
    "refund": (
        "INSERT INTO refunds_by_original (original_id, created_at, id) VALUES (?, ?, ?) "
        "USING TIMESTAMP 1"
    ),
    "item": (
        "UPDATE batch_members USING TIMESTAMP 1 SET kind = ?, amount_minor = ?, currency = ?, "
        "scheme = ?, joined_at = ? WHERE terminal_id = ? AND batch_no = ? AND transaction_id = ?"
    ),
    "seen": (
        "SELECT transaction_id FROM batch_members WHERE terminal_id = ? AND batch_no = ? "
        "AND transaction_id IN ?"
    ),
}


async def _bounded(writes: list[Coroutine[Any, Any, Any]]) -> None:
    """Run ``writes`` with at most IN_FLIGHT outstanding; on a failure the ones not started
    are closed (never left un-awaited) and the error raised."""
    for start in range(0, len(writes), IN_FLIGHT):
        try:
            await asyncio.gather(*writes[start : start + IN_FLIGHT])
        except BaseException:
            for coro in writes[start + IN_FLIGHT :]:
                coro.close()
            raise


def _batches(
    statements: list[tuple[Any, tuple[Any, ...]]], size: int = BATCH
) -> list[BatchStatement]:
    """``statements`` in unlogged batches of ``size`` (a round trip each, not an atomic unit:
    every write is idempotent, so a batch that fails is simply written again by a rerun)."""
    out = []
    for start in range(0, len(statements), size):
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for stmt, params in statements[start : start + size]:
            batch.add(stmt, params)
        out.append(batch)
    return out


def _by_partition(
    statements: list[tuple[Any, tuple[Any, ...]]], key: Callable[[tuple[Any, ...]], object]
) -> list[BatchStatement]:
    """Unlogged batches of one partition each (``key`` of the parameters), up to BATCH rows."""
    groups: dict[object, list[tuple[Any, tuple[Any, ...]]]] = {}
    for stmt, params in statements:
        groups.setdefault(key(params), []).append((stmt, params))
    return [b for group in groups.values() for b in _batches(group, PARTITION_BATCH)]


class CassandraImports(CassandraHost, BatchStore, ImportStore):
    """Mixin for ``CassandraStore`` (uses its ``_prepared``; batches' ``open_batch_no``)."""

    async def import_transactions(self, txs: Sequence[Transaction]) -> None:
        for tx in txs:
            check_new(tx)
            bucket_of(tx.deadline_at)
        cql, q = await self._prepared("imports", _STATEMENTS)
        rows: list[tuple[Any, tuple[Any, ...]]] = []
        index: list[tuple[Any, tuple[Any, ...]]] = []
        markers: set[tuple[str, int]] = set()
        for tx in txs:
            writer = uuid.uuid4()
            bucket = bucket_of(tx.deadline_at)
            markers.add((tx.state.value, bucket))
            rows.append((q["tx"], (*tx_values(tx), {tx.version: writer})))
            rows.append(
                (q["dup"], (tx.terminal_id, tx.local_date, tx.stan, tx.id, writer, tx.created_at))
            )
            index.append((q["idx"], (tx.state.value, bucket, tx.deadline_at, tx.id)))
            if tx.type is TxType.REFUND and tx.original_id:
                rows.append((q["refund"], (tx.original_id, tx.created_at, tx.id)))
        now_us = time.time_ns() // 1000
        rows += [(q["marker"], (s, b, now_us)) for s, b in sorted(markers)]
        batches = _batches(rows) + _by_partition(index, lambda p: (p[0], p[1]))
        # coroutines not awaited yet: _bounded starts them IN_FLIGHT at a time
        await _bounded([cql.run(b, None) for b in batches])

    async def import_batch_items(self, items: Sequence[tuple[str, BatchItem]]) -> None:
        for _, item in items:
            check_item(item)
        cql, q = await self._prepared("imports", _STATEMENTS)
        by_terminal: dict[str, list[BatchItem]] = {}
        for t, i in items:
            by_terminal.setdefault(t, []).append(i)
        rows: list[tuple[Any, tuple[Any, ...]]] = []
        for terminal_id, mine in sorted(by_terminal.items()):
            first = min(i.joined_at for i in mine)
            open_no = await self.open_batch_no(terminal_id, first)
            ids = sorted({i.transaction_id for i in mine})
            seen: set[str] = set()  # in the open batch or the ones a join looks back to
            for n in range(max(1, open_no - REJOIN_LOOKBACK), open_no + 1):
                found = await cql.run(q["seen"], (terminal_id, n, ids))
                seen.update(r["transaction_id"] for r in found)
            rows += [
                (
                    q["item"],
                    (
                        ItemKind(i.kind).value,
                        i.amount_minor,
                        i.currency,
                        i.scheme,
                        i.joined_at,
                        terminal_id,
                        open_no,
                        i.transaction_id,
                    ),
                )
                for i in mine
                if i.transaction_id not in seen
            ]
        batches = _by_partition(rows, lambda p: (p[5], p[6]))  # one batch's partition each
        await _bounded([cql.run(b, None) for b in batches])
