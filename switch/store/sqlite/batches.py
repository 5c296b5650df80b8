"""Batches on the SQLite store (see ``switch.store.batches``): three tables, each step one
``BEGIN IMMEDIATE`` transaction on the store thread, so a join and a close never interleave.

``batch_open`` holds each terminal's open batch number; ``batch_items`` one row per joined
transaction (primary key (terminal, transaction): a transaction joins once); ``batch_log`` a
row per closed batch. Created with ``CREATE TABLE IF NOT EXISTS`` at open, like the vault.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from switch.domain.batches import (
    BatchInfo,
    BatchItem,
    BatchState,
    ClosedBatch,
    ItemKind,
    Unbatched,
    check_item,
)
from switch.store.batches import BatchStore
from switch.store.sqlite.host import SqliteHost

SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_open (
    terminal_id TEXT PRIMARY KEY,
    batch_no INTEGER NOT NULL,
    opened_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_items (
    terminal_id TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    batch_no INTEGER NOT NULL,
    kind TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    scheme TEXT NOT NULL,
    joined_at REAL NOT NULL,
    PRIMARY KEY (terminal_id, transaction_id)
);
CREATE INDEX IF NOT EXISTS batch_items_by_batch ON batch_items (terminal_id, batch_no);
CREATE INDEX IF NOT EXISTS batch_items_pages ON batch_items (terminal_id, batch_no, transaction_id);
CREATE TABLE IF NOT EXISTS batch_unbatched (
    transaction_id TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    marked_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_log (
    terminal_id TEXT NOT NULL,
    batch_no INTEGER NOT NULL,
    state TEXT NOT NULL,
    opened_at REAL NOT NULL,
    closed_at REAL NOT NULL,
    PRIMARY KEY (terminal_id, batch_no)
);
CREATE INDEX IF NOT EXISTS batch_log_by_state ON batch_log (state, terminal_id, batch_no);
"""

_MARK_UNBATCHED = (
    "INSERT OR REPLACE INTO batch_unbatched (transaction_id, terminal_id, kind, marked_at)"
    " VALUES (?, ?, ?, ?)"
)
_CLEAR_UNBATCHED = "DELETE FROM batch_unbatched WHERE transaction_id = ?"
_ITEM_COLUMNS = "transaction_id, kind, amount_minor, currency, scheme, joined_at, batch_no"


def _item(row: tuple[Any, ...]) -> BatchItem:
    tx_id, kind, amount, currency, scheme, joined, batch_no = row
    return BatchItem(tx_id, ItemKind(kind), int(amount), currency, scheme, joined, int(batch_no))


def _ensure_open(c: sqlite3.Connection, terminal_id: str, now: float) -> tuple[int, float]:
    row = c.execute(
        "SELECT batch_no, opened_at FROM batch_open WHERE terminal_id = ?", (terminal_id,)
    ).fetchone()
    if row is not None:
        return int(row[0]), float(row[1])
    c.execute(
        "INSERT INTO batch_open (terminal_id, batch_no, opened_at) VALUES (?, 1, ?)",
        (terminal_id, now),
    )
    return 1, now


class SqliteBatches(SqliteHost, BatchStore):
    """Mixin for ``SqliteStore`` (uses its ``_call`` and ``_write``)."""

    async def join_batch(self, terminal_id: str, item: BatchItem, now: float) -> int:
        check_item(item)
        return await self._call(self._join, terminal_id, item, now)

    def _join(self, conn: sqlite3.Connection, terminal_id: str, item: BatchItem, now: float) -> int:
        def body(c: sqlite3.Connection) -> int:
            row = c.execute(
                "SELECT batch_no FROM batch_items WHERE terminal_id = ? AND transaction_id = ?",
                (terminal_id, item.transaction_id),
            ).fetchone()
            if row is not None:
                return int(row[0])
            batch_no, _ = _ensure_open(c, terminal_id, now)
            c.execute(
                f"INSERT INTO batch_items (terminal_id, {_ITEM_COLUMNS}) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    terminal_id,
                    item.transaction_id,
                    ItemKind(item.kind).value,
                    item.amount_minor,
                    item.currency,
                    item.scheme,
                    item.joined_at,
                    batch_no,
                ),
            )
            return batch_no

        return self._write(conn, body)

    async def open_batch_no(self, terminal_id: str, now: float) -> int:
        return await self._call(
            lambda conn: self._write(conn, lambda c: _ensure_open(c, terminal_id, now)[0])
        )

    async def close_batch(
        self, terminal_id: str, now: float, *, with_items: bool = True
    ) -> ClosedBatch:
        return await self._call(self._close, terminal_id, now, with_items)

    def _close(
        self, conn: sqlite3.Connection, terminal_id: str, now: float, with_items: bool
    ) -> ClosedBatch:
        def body(c: sqlite3.Connection) -> ClosedBatch:
            batch_no, opened_at = _ensure_open(c, terminal_id, now)
            c.execute(
                "UPDATE batch_open SET batch_no = ?, opened_at = ? WHERE terminal_id = ?",
                (batch_no + 1, now, terminal_id),
            )
            c.execute(
                "INSERT INTO batch_log (terminal_id, batch_no, state, opened_at, closed_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (terminal_id, batch_no, BatchState.CLOSED.value, opened_at, now),
            )
            items = self._items(c, terminal_id, batch_no) if with_items else []
            info = BatchInfo(terminal_id, batch_no, BatchState.CLOSED, opened_at, now)
            return ClosedBatch(info, tuple(items))

        return self._write(conn, body)

    async def batch_items(self, terminal_id: str, batch_no: int) -> list[BatchItem]:
        return await self._call(self._items, terminal_id, batch_no)

    @staticmethod
    def _items(conn: sqlite3.Connection, terminal_id: str, batch_no: int) -> list[BatchItem]:
        rows = conn.execute(
            f"SELECT {_ITEM_COLUMNS} FROM batch_items "  # noqa: S608
            "WHERE terminal_id = ? AND batch_no = ? ORDER BY joined_at, transaction_id",
            (terminal_id, batch_no),
        ).fetchall()
        return [_item(r) for r in rows]

    async def batch_items_page(
        self, terminal_id: str, batch_no: int, after: str, limit: int
    ) -> list[BatchItem]:
        return await self._call(self._page, terminal_id, batch_no, after, limit)

    @staticmethod
    def _page(
        conn: sqlite3.Connection, terminal_id: str, batch_no: int, after: str, limit: int
    ) -> list[BatchItem]:
        rows = conn.execute(
            f"SELECT {_ITEM_COLUMNS} FROM batch_items "  # noqa: S608
            "WHERE terminal_id = ? AND batch_no = ? AND transaction_id > ? "
            "ORDER BY transaction_id LIMIT ?",
            (terminal_id, batch_no, after, limit),
        ).fetchall()
        return [_item(r) for r in rows]

    async def batches_of(self, terminal_id: str, limit: int = 50) -> list[BatchInfo]:
        return await self._call(self._batches, terminal_id, limit)

    @staticmethod
    def _batches(conn: sqlite3.Connection, terminal_id: str, limit: int) -> list[BatchInfo]:
        rows = conn.execute(
            "SELECT batch_no, state, opened_at, closed_at FROM batch_log "
            "WHERE terminal_id = ? ORDER BY batch_no DESC LIMIT ?",
            (terminal_id, limit),
        ).fetchall()
        return [BatchInfo(terminal_id, int(n), BatchState(s), o, c) for n, s, o, c in rows]

    async def closed_batches(self, limit: int) -> list[BatchInfo]:
        return await self._call(self._closed, limit)

    @staticmethod
    def _closed(conn: sqlite3.Connection, limit: int) -> list[BatchInfo]:
        rows = conn.execute(
            "SELECT terminal_id, batch_no, opened_at, closed_at FROM batch_log "
            "WHERE state = ? ORDER BY terminal_id, batch_no LIMIT ?",
            (BatchState.CLOSED.value, limit),
        ).fetchall()
        return [BatchInfo(t, int(n), BatchState.CLOSED, o, c) for t, n, o, c in rows]

    async def mark_batch_cleared(self, terminal_id: str, batch_no: int) -> None:
        await self._call(self._cleared, terminal_id, batch_no)

    @staticmethod
    def _cleared(conn: sqlite3.Connection, terminal_id: str, batch_no: int) -> None:
        conn.execute(
            "UPDATE batch_log SET state = ? WHERE terminal_id = ? AND batch_no = ?",
            (BatchState.CLEARED.value, terminal_id, batch_no),
        )

    async def mark_unbatched(
        self, terminal_id: str, transaction_id: str, kind: ItemKind, now: float
    ) -> None:
        args = (transaction_id, terminal_id, ItemKind(kind).value, now)
        await self._call(self._exec, _MARK_UNBATCHED, args)

    def _exec(self, conn: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> None:
        """One statement in its own write transaction."""

        def body(c: sqlite3.Connection) -> None:
            c.execute(sql, args)

        self._write(conn, body)

    async def unbatched(self, limit: int) -> list[Unbatched]:
        return await self._call(self._unbatched, limit)

    @staticmethod
    def _unbatched(conn: sqlite3.Connection, limit: int) -> list[Unbatched]:
        rows = conn.execute(
            "SELECT terminal_id, transaction_id, kind, marked_at FROM batch_unbatched "
            "ORDER BY marked_at, transaction_id LIMIT ?",
            (limit,),
        ).fetchall()
        return [Unbatched(t, x, ItemKind(k), float(m)) for t, x, k, m in rows]

    async def clear_unbatched(self, transaction_id: str) -> None:
        await self._call(self._exec, _CLEAR_UNBATCHED, (transaction_id,))
