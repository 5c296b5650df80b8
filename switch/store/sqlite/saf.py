"""The store-and-forward queue on SQLite: one ``saf_items`` row per item.

Each change is one ``BEGIN IMMEDIATE`` transaction on the store thread: read the row, compute
the new item with the pure step from ``saf_base``, write it with ``version + 1``. The write lock
makes that read-compute-write atomic against every other connection (another switch process on
the same file is refused by the one-process rule, but tests open two stores on one file).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from switch.domain.saf import SAF_COLUMNS, Change, SafItem, SafKind, rearmed
from switch.store.sqlite.host import SqliteHost

SCHEMA = """
CREATE TABLE IF NOT EXISTS saf_items (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    last_error TEXT NOT NULL,
    dead INTEGER NOT NULL,
    done INTEGER NOT NULL,
    leased_by TEXT NOT NULL,
    lease_until REAL NOT NULL,
    version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS saf_items_waiting ON saf_items (dead, done, next_attempt_at);
"""

_COLS = ", ".join(SAF_COLUMNS)
_SELECT = f"SELECT {_COLS} FROM saf_items"  # noqa: S608 (fixed column names)
_UPSERT = (
    f"INSERT OR REPLACE INTO saf_items ({_COLS}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(SAF_COLUMNS))})"
)


def _item(row: tuple[Any, ...]) -> SafItem:
    item = SafItem(*row)
    item.kind = SafKind(item.kind)
    item.dead = bool(item.dead)
    item.done = bool(item.done)
    return item


def _values(item: SafItem) -> tuple[Any, ...]:
    return tuple(
        int(v) if isinstance(v, bool) else (v.value if isinstance(v, SafKind) else v)
        for v in (getattr(item, c) for c in SAF_COLUMNS)
    )


def _get(conn: sqlite3.Connection, item_id: str) -> SafItem | None:
    row = conn.execute(f"{_SELECT} WHERE id = ?", (item_id,)).fetchone()
    return _item(row) if row else None


def put(conn: sqlite3.Connection, item: SafItem) -> SafItem:
    conn.execute("BEGIN IMMEDIATE")
    existing = _get(conn, item.id)
    if existing is None:
        stored = item.copy(version=1)
    else:
        fresh = rearmed(existing, item)
        if fresh is None:
            conn.execute("COMMIT")
            return existing
        stored = fresh.copy(version=existing.version + 1)
    conn.execute(_UPSERT, _values(stored))
    conn.execute("COMMIT")
    return stored


def get(conn: sqlite3.Connection, item_id: str) -> SafItem | None:
    return _get(conn, item_id)


def update(conn: sqlite3.Connection, item_id: str, change: Change) -> SafItem | None:
    conn.execute("BEGIN IMMEDIATE")
    existing = _get(conn, item_id)
    if existing is None:
        conn.execute("COMMIT")
        raise KeyError(item_id)
    new = change(existing)  # may raise: the caller's guard rolls back
    if new is None:
        conn.execute("COMMIT")
        return None
    stored = new.copy(version=existing.version + 1)
    conn.execute(_UPSERT, _values(stored))
    conn.execute("COMMIT")
    return stored


def listing(
    conn: sqlite3.Connection, dead: bool, limit: int, due_before: float | None
) -> list[SafItem]:
    sql = f"{_SELECT} WHERE dead = ? AND done = 0"
    params: list[Any] = [int(dead)]
    if due_before is not None:
        sql += " AND next_attempt_at <= ?"
        params.append(due_before)
    sql += " ORDER BY next_attempt_at, id LIMIT ?"
    params.append(limit)
    return [_item(r) for r in conn.execute(sql, params).fetchall()]


def depths(conn: sqlite3.Connection) -> dict[tuple[str, bool], int]:
    rows = conn.execute(
        "SELECT kind, dead, count(*) FROM saf_items WHERE done = 0 GROUP BY kind, dead"
    ).fetchall()
    return {(kind, bool(dead)): int(n) for kind, dead, n in rows}


class SqliteSafMixin(SqliteHost):
    """``SafStore`` for ``SqliteStore``: each method is one hop to the store thread."""

    async def saf_put(self, item: SafItem) -> SafItem:
        return await self._call(put, item)

    async def saf_get(self, item_id: str) -> SafItem | None:
        return await self._call(get, item_id)

    async def saf_update(self, item_id: str, change: Change) -> SafItem | None:
        return await self._call(update, item_id, change)

    async def saf_list(
        self, dead: bool, limit: int = 100, due_before: float | None = None
    ) -> list[SafItem]:
        return await self._call(listing, dead, limit, due_before)

    async def saf_depths(self) -> dict[tuple[str, bool], int]:
        return await self._call(depths)
