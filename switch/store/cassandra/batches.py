"""Batches on the Cassandra store (see ``switch.store.batches`` and ``cql/008_batches.cql``).

A terminal's items live in one ``batch_items`` partition whose static ``open_batch`` is the
open batch number. Every change is a lightweight transaction on that partition:

- open:  ``UPDATE ... SET open_batch = 1 IF open_batch = null``;
- join:  ``UPDATE ... SET batch_no = n, ... WHERE id = ? IF open_batch = n AND batch_no = null``
  (not applied: the row shows the batch the transaction is already in, or the new n);
- close: ``UPDATE ... SET open_batch = n + 1, closer = ? IF open_batch = n``.

Paxos orders them, so once a close is applied no join can enter batch n, and a read at the
store's consistency after it sees every join that entered n. Unknown outcomes are settled by
a SERIAL read (our ``closer`` id; for a join, any ``batch_no`` on the row: the transaction
joins once, whoever wrote it). Closed batches are recorded in 003's ``batches`` table with
plain writes (that table is never written by LWT). Known limit: a terminal's partition keeps
every item it ever had; reading a batch reads the partition (paged, off the event loop).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from cassandra.query import SimpleStatement

from switch.domain.batches import (
    BatchInfo,
    BatchItem,
    BatchState,
    ClosedBatch,
    ItemKind,
    check_item,
)
from switch.domain.errors import StoreUnavailable
from switch.store.batches import BatchStore
from switch.store.cassandra.exec import Cql, Row, backoff
from switch.store.cassandra.host import CassandraHost

ATTEMPTS = 32

_STATEMENTS = {
    "open_get": (
        "SELECT open_batch, opened_at, closer FROM batch_items WHERE terminal_id = ? LIMIT 1"
    ),
    "open_first": (
        "UPDATE batch_items SET open_batch = 1, opened_at = ? WHERE terminal_id = ? "
        "IF open_batch = null"
    ),
    "item_get": (
        "SELECT open_batch, batch_no FROM batch_items WHERE terminal_id = ? AND transaction_id = ?"
    ),
    "join": (
        "UPDATE batch_items SET batch_no = ?, kind = ?, amount_minor = ?, currency = ?, "
        "scheme = ?, joined_at = ? WHERE terminal_id = ? AND transaction_id = ? "
        "IF open_batch = ? AND batch_no = null"
    ),
    "close": (
        "UPDATE batch_items SET open_batch = ?, opened_at = ?, closer = ? WHERE terminal_id = ? "
        "IF open_batch = ?"
    ),
    "log_put": (
        "INSERT INTO batches (terminal_id, batch_no, state, opened_at, closed_at) "
        "VALUES (?, ?, ?, ?, ?)"
    ),
    "log_state": "UPDATE batches SET state = ? WHERE terminal_id = ? AND batch_no = ?",
    "log_list": (
        "SELECT batch_no, state, opened_at, closed_at FROM batches WHERE terminal_id = ? LIMIT ?"
    ),
}
_ITEMS = (
    "SELECT transaction_id, batch_no, kind, amount_minor, currency, scheme, joined_at "
    "FROM batch_items WHERE terminal_id = %s"
)


def _item(row: Row) -> BatchItem:
    return BatchItem(
        row["transaction_id"],
        ItemKind(row["kind"]),
        int(row["amount_minor"] or 0),
        row["currency"] or "",
        row["scheme"] or "",
        float(row["joined_at"] or 0.0),
        int(row["batch_no"]),
    )


class CassandraBatches(CassandraHost, BatchStore):
    """Mixin for ``CassandraStore`` (uses its ``_open``)."""

    async def _bq(self) -> tuple[Cql, dict[str, Any]]:
        return await self._prepared("batches", _STATEMENTS)

    async def _open_no(self, terminal_id: str, now: float) -> tuple[int, float]:
        cql, q = await self._bq()
        for attempt in range(ATTEMPTS):
            await backoff(attempt)
            rows = await cql.run(q["open_get"], (terminal_id,))
            if rows and rows[0]["open_batch"] is not None:
                return int(rows[0]["open_batch"]), float(rows[0]["opened_at"] or 0.0)
            ok, row = await cql.lwt(q["open_first"], (now, terminal_id))
            if ok:
                return 1, now
            if ok is False and row.get("open_batch") is not None:
                continue  # someone opened it: read it back (with its opened_at)
            row = await cql.serial(q["open_get"], (terminal_id,)) or {}
            if row.get("open_batch") is not None:
                return int(row["open_batch"]), float(row["opened_at"] or 0.0)
        raise StoreUnavailable(f"open batch of {terminal_id}: no decision after contention")

    async def open_batch_no(self, terminal_id: str, now: float) -> int:
        return (await self._open_no(terminal_id, now))[0]

    async def join_batch(self, terminal_id: str, item: BatchItem, now: float) -> int:
        check_item(item)
        cql = self._open()
        return await cql.shielded(self._join(terminal_id, item, now))

    async def _join(self, terminal_id: str, item: BatchItem, now: float) -> int:
        cql, q = await self._bq()
        rows = await cql.run(q["item_get"], (terminal_id, item.transaction_id))
        if rows and rows[0]["batch_no"] is not None:
            return int(rows[0]["batch_no"])
        batch_no, _ = await self._open_no(terminal_id, now)
        values = (
            ItemKind(item.kind).value,
            item.amount_minor,
            item.currency,
            item.scheme,
            item.joined_at,
            terminal_id,
            item.transaction_id,
        )
        for attempt in range(ATTEMPTS):
            await backoff(attempt)
            ok, row = await cql.lwt(q["join"], (batch_no, *values, batch_no))
            if ok is None:
                row = await cql.serial(q["item_get"], (terminal_id, item.transaction_id)) or {}
            if ok:
                return batch_no
            if row.get("batch_no") is not None:
                return int(row["batch_no"])  # joined already (a retry, another switch)
            if row.get("open_batch") is not None:
                batch_no = int(row["open_batch"])  # closed meanwhile: join the next one
        raise StoreUnavailable(f"join batch of {terminal_id}: no decision after contention")

    async def close_batch(self, terminal_id: str, now: float) -> ClosedBatch:
        cql = self._open()
        return await cql.shielded(self._close(terminal_id, now))

    async def _close(self, terminal_id: str, now: float) -> ClosedBatch:
        cql, q = await self._bq()
        batch_no, opened_at = await self._open_no(terminal_id, now)
        for attempt in range(ATTEMPTS):
            await backoff(attempt)
            closer = uuid.uuid4()
            ok, row = await cql.lwt(q["close"], (batch_no + 1, now, closer, terminal_id, batch_no))
            if ok is None:  # settle it: is the close that moved it ours?
                row = await cql.serial(q["open_get"], (terminal_id,)) or {}
                ok = row.get("open_batch") == batch_no + 1 and row.get("closer") == closer
            if ok:
                await cql.run(
                    q["log_put"],
                    (terminal_id, batch_no, BatchState.CLOSED.value, opened_at, now),
                )
                items = await self.batch_items(terminal_id, batch_no)
                info = BatchInfo(terminal_id, batch_no, BatchState.CLOSED, opened_at, now)
                return ClosedBatch(info, tuple(items))
            # Another process closed it first: close the batch that is open now.
            batch_no, opened_at = await self._open_no(terminal_id, now)
        raise StoreUnavailable(f"close batch of {terminal_id}: no decision after contention")

    async def batch_items(self, terminal_id: str, batch_no: int) -> list[BatchItem]:
        cql = self._open()
        session = cql.session

        def read() -> list[Row]:
            try:
                return list(
                    session.execute(SimpleStatement(_ITEMS, fetch_size=1000), (terminal_id,))
                )
            except Exception as exc:  # any driver error: fail closed
                raise StoreUnavailable(f"Cassandra: batch items: {type(exc).__name__}") from exc

        rows = await asyncio.to_thread(read)
        items = [_item(r) for r in rows if r.get("batch_no") == batch_no and r.get("kind")]
        return sorted(items, key=lambda i: (i.joined_at, i.transaction_id))

    async def batches_of(self, terminal_id: str, limit: int = 50) -> list[BatchInfo]:
        cql, q = await self._bq()
        rows = await cql.run(q["log_list"], (terminal_id, limit))
        return [
            BatchInfo(
                terminal_id,
                int(r["batch_no"]),
                BatchState(r["state"]),
                float(r["opened_at"] or 0.0),
                float(r["closed_at"] or 0.0),
            )
            for r in rows
        ]

    async def mark_batch_cleared(self, terminal_id: str, batch_no: int) -> None:
        cql, q = await self._bq()
        await cql.run(q["log_state"], (BatchState.CLEARED.value, terminal_id, batch_no))
