"""Bulk load on the Cassandra store (see ``switch.store.imports``): concurrent plain writes.

Every cell is written ``USING TIMESTAMP 1`` (microseconds), older than any live write: a
live write (a compare-and-set's lightweight transaction, an index clean-up) wins over it, and
importing a page again changes nothing that moved since. Per transaction: its row, its
duplicate-transmission key, its by-state entry and (a refund) its by-original entry; per
(state, minute) one bucket marker at the current time (``switch.store.cassandra.index``), so
a scan finds the entries. Batch items go to the terminal's open batch, read (or opened) once
per terminal, each at a timestamp that is lower for a later batch (``_ITEM_BASE``) so that the
first batch an item joined is the one it stays in. At most ``IN_FLIGHT`` writes are
outstanding, so memory stays bounded by the page.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Coroutine, Sequence
from typing import Any

from switch.domain.batches import BatchItem, ItemKind, check_item
from switch.domain.transactions import COLUMNS, Transaction, TxType, check_new
from switch.store.batches import BatchStore
from switch.store.cassandra.cql import tx_values
from switch.store.cassandra.host import CassandraHost
from switch.store.cassandra.index import bucket_of
from switch.store.imports import ImportStore

IN_FLIGHT = 256
# A batch item's write timestamp: below one second after the epoch and lower for a later batch,
# so an item imported again while its batch is closed (open batch now n + 1) keeps batch n
# (between two writes of one timestamp Cassandra would keep the larger value).
_ITEM_BASE = 1_000_000

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
        "UPDATE batch_items USING TIMESTAMP ? SET batch_no = ?, kind = ?, amount_minor = ?, "
        "currency = ?, scheme = ?, joined_at = ? WHERE terminal_id = ? AND transaction_id = ?"
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


class CassandraImports(CassandraHost, BatchStore, ImportStore):
    """Mixin for ``CassandraStore`` (uses its ``_prepared``; batches' ``open_batch_no``)."""

    async def import_transactions(self, txs: Sequence[Transaction]) -> None:
        for tx in txs:
            check_new(tx)
            bucket_of(tx.deadline_at)
        cql, q = await self._prepared("imports", _STATEMENTS)
        writes: list[Coroutine[Any, Any, Any]] = []
        markers: set[tuple[str, int]] = set()
        for tx in txs:
            writer = uuid.uuid4()
            bucket = bucket_of(tx.deadline_at)
            markers.add((tx.state.value, bucket))
            writes.append(cql.run(q["tx"], (*tx_values(tx), {tx.version: writer})))
            writes.append(
                cql.run(
                    q["dup"],
                    (tx.terminal_id, tx.local_date, tx.stan, tx.id, writer, tx.created_at),
                )
            )
            writes.append(cql.run(q["idx"], (tx.state.value, bucket, tx.deadline_at, tx.id)))
            if tx.type is TxType.REFUND and tx.original_id:
                writes.append(cql.run(q["refund"], (tx.original_id, tx.created_at, tx.id)))
        now_us = time.time_ns() // 1000
        writes += [cql.run(q["marker"], (s, b, now_us)) for s, b in sorted(markers)]
        # coroutines not awaited yet: _bounded starts them IN_FLIGHT at a time
        await _bounded(writes)

    async def import_batch_items(self, items: Sequence[tuple[str, BatchItem]]) -> None:
        for _, item in items:
            check_item(item)
        cql, q = await self._prepared("imports", _STATEMENTS)
        open_no: dict[str, int] = {}
        for terminal_id in sorted({t for t, _ in items}):
            first = min(i.joined_at for t, i in items if t == terminal_id)
            open_no[terminal_id] = await self.open_batch_no(terminal_id, first)
        await _bounded(
            [
                cql.run(
                    q["item"],
                    (
                        _ITEM_BASE - open_no[t],
                        open_no[t],
                        ItemKind(i.kind).value,
                        i.amount_minor,
                        i.currency,
                        i.scheme,
                        i.joined_at,
                        t,
                        i.transaction_id,
                    ),
                )
                for t, i in items
            ]
        )
