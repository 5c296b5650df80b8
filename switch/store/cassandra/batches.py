"""Batches on the Cassandra store (see ``switch.store.batches`` and ``cql/014_batch_buckets.cql``).

Every partition is bounded (issue 17): a batch's items live in their own ``batch_members``
partition ``(terminal_id, batch_no)``, whose static ``open_batch`` is n while batch n is open
and n + 1 once it is closed. Every change is a lightweight transaction on that partition:

- open:  ``UPDATE ... SET open_batch = n IF open_batch = null`` (batch 1, or the batch after a
  closed one, by whoever first sees it closed);
- join:  ``UPDATE ... SET kind = ?, ... WHERE transaction_id = ? IF open_batch = n AND
  kind = null`` (not applied: the row shows the transaction joined already, or n closed);
- close: ``UPDATE ... SET open_batch = n + 1, closer = ? IF open_batch = n``.

Paxos orders them on the partition, so once a close is applied no join can enter batch n, and
a read at the store's consistency after it sees every join that entered n. Unknown outcomes
are settled by a SERIAL read (our ``closer`` id; for a join, the row's ``kind``).
``batch_open_hint`` says where the open batch was last seen; readers walk forward from it
through closed partitions (a stale hint costs reads, never correctness), and a walk that passes
a closed batch with no ``batch_record`` (its closer died after the close) writes it. A closed
batch gets a ``batch_record`` row and a ``batches_to_clear`` row (16 shards), deleted when it
is cleared, so the clearing step lists what to clear without reading history.

A transaction joins once: a join looks for it in the open batch and the ``REJOIN_LOOKBACK``
batches before it (a retried capture arrives within a cut-off or two; one retried later than
that would join again, and the clearing would present it again: the issuer answers a
presentment it has seen with its first result, and the switch settles a transaction once).
"""

from __future__ import annotations

import asyncio
import uuid
import zlib
from typing import Any

from cassandra.query import SimpleStatement

from switch.domain.batches import (
    BatchInfo,
    BatchItem,
    BatchState,
    ClosedBatch,
    ItemKind,
    Unbatched,
    check_item,
)
from switch.domain.errors import StoreUnavailable
from switch.store.batches import BatchStore
from switch.store.cassandra.exec import Cql, Row, backoff
from switch.store.cassandra.host import CassandraHost

ATTEMPTS = 32
WALK_LIMIT = 4_096  # closed partitions a walk from a stale hint may cross
REJOIN_LOOKBACK = 2
SHARDS = 16

_STATEMENTS = {
    "hint_get": "SELECT batch_no FROM batch_open_hint WHERE terminal_id = ?",
    "hint_put": "UPDATE batch_open_hint SET batch_no = ? WHERE terminal_id = ?",
    "part_get": (
        "SELECT open_batch, opened_at, closer, closed_at FROM batch_members "
        "WHERE terminal_id = ? AND batch_no = ? LIMIT 1"
    ),
    "part_open": (
        "UPDATE batch_members SET open_batch = ?, opened_at = ? "
        "WHERE terminal_id = ? AND batch_no = ? IF open_batch = null"
    ),
    "item_get": (
        "SELECT open_batch, kind FROM batch_members "
        "WHERE terminal_id = ? AND batch_no = ? AND transaction_id = ?"
    ),
    "join": (
        "UPDATE batch_members SET kind = ?, amount_minor = ?, currency = ?, scheme = ?, "
        "joined_at = ? WHERE terminal_id = ? AND batch_no = ? AND transaction_id = ? "
        "IF open_batch = ? AND kind = null"
    ),
    "close": (
        "UPDATE batch_members SET open_batch = ?, closer = ?, closed_at = ? "
        "WHERE terminal_id = ? AND batch_no = ? IF open_batch = ?"
    ),
    "items_page": (
        "SELECT transaction_id, kind, amount_minor, currency, scheme, joined_at "
        "FROM batch_members WHERE terminal_id = ? AND batch_no = ? AND transaction_id > ? "
        "LIMIT ?"
    ),
    "record_get": (
        "SELECT state, opened_at, closed_at FROM batch_record "
        "WHERE terminal_id = ? AND batch_no = ?"
    ),
    "record_put": (
        "INSERT INTO batch_record (terminal_id, batch_no, state, opened_at, closed_at) "
        "VALUES (?, ?, ?, ?, ?)"
    ),
    "record_state": "UPDATE batch_record SET state = ? WHERE terminal_id = ? AND batch_no = ?",
    "todo_put": (
        "INSERT INTO batches_to_clear (shard, terminal_id, batch_no, opened_at, closed_at) "
        "VALUES (?, ?, ?, ?, ?)"
    ),
    "todo_del": "DELETE FROM batches_to_clear WHERE shard = ? AND terminal_id = ? AND batch_no = ?",
    "todo_list": (
        "SELECT terminal_id, batch_no, opened_at, closed_at FROM batches_to_clear "
        "WHERE shard = ? LIMIT ?"
    ),
    "unb_put": (
        "INSERT INTO batch_unbatched (shard, transaction_id, terminal_id, kind, marked_at) "
        "VALUES (?, ?, ?, ?, ?)"
    ),
    "unb_del": "DELETE FROM batch_unbatched WHERE shard = ? AND transaction_id = ?",
    "unb_list": (
        "SELECT transaction_id, terminal_id, kind, marked_at FROM batch_unbatched "
        "WHERE shard = ? LIMIT ?"
    ),
}
_ITEMS = (
    "SELECT transaction_id, kind, amount_minor, currency, scheme, joined_at "
    "FROM batch_members WHERE terminal_id = %s AND batch_no = %s"
)


def shard_of(key: str) -> int:
    return zlib.crc32(key.encode()) % SHARDS


def _item(row: Row, batch_no: int) -> BatchItem:
    return BatchItem(
        row["transaction_id"],
        ItemKind(row["kind"]),
        int(row["amount_minor"] or 0),
        row["currency"] or "",
        row["scheme"] or "",
        float(row["joined_at"] or 0.0),
        batch_no,
    )


class CassandraBatches(CassandraHost, BatchStore):
    """Mixin for ``CassandraStore`` (uses its ``_open``)."""

    async def _bq(self) -> tuple[Cql, dict[str, Any]]:
        return await self._prepared("batches14", _STATEMENTS)

    async def _hint(self, terminal_id: str) -> int:
        cql, q = await self._bq()
        rows = await cql.run(q["hint_get"], (terminal_id,))
        return int(rows[0]["batch_no"]) if rows and rows[0]["batch_no"] else 1

    async def _record_closed(
        self, terminal_id: str, batch_no: int, opened_at: float, closed_at: float
    ) -> None:
        cql, q = await self._bq()
        await cql.run(
            q["record_put"],
            (terminal_id, batch_no, BatchState.CLOSED.value, opened_at, closed_at),
        )
        await cql.run(
            q["todo_put"], (shard_of(terminal_id), terminal_id, batch_no, opened_at, closed_at)
        )

    async def _open_no(self, terminal_id: str, now: float) -> tuple[int, float]:
        """The open batch (opening the first, or the one after a closed one, if need be)."""
        cql, q = await self._bq()
        start = n = await self._hint(terminal_id)
        contended = 0
        for _ in range(WALK_LIMIT):
            rows = await cql.run(q["part_get"], (terminal_id, n))
            row = rows[0] if rows else {}
            opened = row.get("open_batch")
            if opened == n:
                if n != start:
                    await cql.run(q["hint_put"], (n, terminal_id))
                return n, float(row.get("opened_at") or now)
            if opened == n + 1:  # closed: make sure it is on record (its closer may have died)
                if not await cql.run(q["record_get"], (terminal_id, n)):
                    closed_at = float(row.get("closed_at") or now)
                    await self._record_closed(terminal_id, n, float(row["opened_at"]), closed_at)
                n += 1
                continue
            await backoff(contended)
            contended += 1
            if contended > ATTEMPTS:
                break
            ok, _ = await cql.lwt(q["part_open"], (n, now, terminal_id, n))
            if ok:
                await cql.run(q["hint_put"], (n, terminal_id))
                return n, now
            # Not applied (someone opened it) or unknown: read it again.
        raise StoreUnavailable(f"open batch of {terminal_id}: no decision after contention")

    async def open_batch_no(self, terminal_id: str, now: float) -> int:
        return (await self._open_no(terminal_id, now))[0]

    async def join_batch(self, terminal_id: str, item: BatchItem, now: float) -> int:
        check_item(item)
        cql = self._open()
        return await cql.shielded(self._join(terminal_id, item, now))

    async def _joined_in(self, terminal_id: str, tx_id: str, open_no: int) -> int | None:
        cql, q = await self._bq()
        for batch_no in range(open_no, max(0, open_no - REJOIN_LOOKBACK - 1), -1):
            rows = await cql.run(q["item_get"], (terminal_id, batch_no, tx_id))
            if rows and rows[0]["kind"] is not None:
                return batch_no
        return None

    async def _join(self, terminal_id: str, item: BatchItem, now: float) -> int:
        cql, q = await self._bq()
        batch_no, _ = await self._open_no(terminal_id, now)
        already = await self._joined_in(terminal_id, item.transaction_id, batch_no)
        if already is not None:
            return already
        values = (
            ItemKind(item.kind).value,
            item.amount_minor,
            item.currency,
            item.scheme,
            item.joined_at,
        )
        for attempt in range(ATTEMPTS):
            await backoff(attempt)
            key = (terminal_id, batch_no, item.transaction_id)
            ok, row = await cql.lwt(q["join"], (*values, *key, batch_no))
            if ok is None:
                row = await cql.serial(q["item_get"], key) or {}
            if ok:
                return batch_no
            if row.get("kind") is not None:
                return batch_no  # joined already (a retry, another switch)
            if row.get("open_batch") not in (None, batch_no):
                batch_no, _ = await self._open_no(terminal_id, now)  # closed: join the next
        raise StoreUnavailable(f"join batch of {terminal_id}: no decision after contention")

    async def close_batch(
        self, terminal_id: str, now: float, *, with_items: bool = True
    ) -> ClosedBatch:
        cql = self._open()
        return await cql.shielded(self._close(terminal_id, now, with_items))

    async def _close(self, terminal_id: str, now: float, with_items: bool) -> ClosedBatch:
        cql, q = await self._bq()
        batch_no, opened_at = await self._open_no(terminal_id, now)
        for attempt in range(ATTEMPTS):
            await backoff(attempt)
            closer = uuid.uuid4()
            ok, row = await cql.lwt(
                q["close"], (batch_no + 1, closer, now, terminal_id, batch_no, batch_no)
            )
            if ok is None:  # settle it: is the close that moved it ours?
                row = await cql.serial(q["part_get"], (terminal_id, batch_no)) or {}
                ok = row.get("open_batch") == batch_no + 1 and row.get("closer") == closer
            if ok:
                await self._record_closed(terminal_id, batch_no, opened_at, now)
                await cql.run(q["hint_put"], (batch_no + 1, terminal_id))
                items = await self.batch_items(terminal_id, batch_no) if with_items else []
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
                stmt = SimpleStatement(_ITEMS, fetch_size=2000)
                return list(session.execute(stmt, (terminal_id, batch_no)))
            except Exception as exc:  # any driver error: fail closed
                raise StoreUnavailable(f"Cassandra: batch items: {type(exc).__name__}") from exc

        rows = await asyncio.to_thread(read)
        items = [_item(r, batch_no) for r in rows if r.get("kind")]
        return sorted(items, key=lambda i: (i.joined_at, i.transaction_id))

    async def batch_items_page(
        self, terminal_id: str, batch_no: int, after: str, limit: int
    ) -> list[BatchItem]:
        cql, q = await self._bq()
        rows = await cql.run(q["items_page"], (terminal_id, batch_no, after, limit))
        return [_item(r, batch_no) for r in rows if r.get("kind")]

    async def batches_of(self, terminal_id: str, limit: int = 50) -> list[BatchInfo]:
        cql, q = await self._bq()
        n = await self._hint(terminal_id)
        for _ in range(WALK_LIMIT):  # read-only walk past closed partitions
            rows = await cql.run(q["part_get"], (terminal_id, n))
            if not rows or rows[0].get("open_batch") != n + 1:
                break
            n += 1
        wanted = range(n, max(0, n - limit - 1), -1)
        found = await asyncio.gather(*(cql.run(q["record_get"], (terminal_id, b)) for b in wanted))
        out = [
            BatchInfo(
                terminal_id,
                b,
                BatchState(rows[0]["state"]),
                float(rows[0]["opened_at"] or 0.0),
                float(rows[0]["closed_at"] or 0.0),
            )
            for b, rows in zip(wanted, found, strict=True)
            if rows
        ]
        return out[:limit]

    async def closed_batches(self, limit: int) -> list[BatchInfo]:
        cql, q = await self._bq()
        found = await asyncio.gather(
            *(cql.run(q["todo_list"], (shard, limit)) for shard in range(SHARDS))
        )
        out = [
            BatchInfo(
                r["terminal_id"],
                int(r["batch_no"]),
                BatchState.CLOSED,
                float(r["opened_at"] or 0.0),
                float(r["closed_at"] or 0.0),
            )
            for rows in found
            for r in rows
        ]
        return sorted(out, key=lambda b: (b.terminal_id, b.batch_no))[:limit]

    async def mark_batch_cleared(self, terminal_id: str, batch_no: int) -> None:
        cql, q = await self._bq()
        await cql.run(q["record_state"], (BatchState.CLEARED.value, terminal_id, batch_no))
        await cql.run(q["todo_del"], (shard_of(terminal_id), terminal_id, batch_no))

    async def mark_unbatched(
        self, terminal_id: str, transaction_id: str, kind: ItemKind, now: float
    ) -> None:
        cql, q = await self._bq()
        values = (shard_of(transaction_id), transaction_id, terminal_id, ItemKind(kind).value, now)
        await cql.run(q["unb_put"], values)  # a plain upsert: the latest mark's time wins

    async def unbatched(self, limit: int) -> list[Unbatched]:
        cql, q = await self._bq()
        found = await asyncio.gather(
            *(cql.run(q["unb_list"], (shard, limit)) for shard in range(SHARDS))
        )
        out = [
            Unbatched(
                r["terminal_id"], r["transaction_id"], ItemKind(r["kind"]), float(r["marked_at"])
            )
            for rows in found
            for r in rows
        ]
        return sorted(out, key=lambda u: (u.marked_at, u.transaction_id))[:limit]

    async def clear_unbatched(self, transaction_id: str) -> None:
        cql, q = await self._bq()
        await cql.run(q["unb_del"], (shard_of(transaction_id), transaction_id))
