"""Bulk load on the SQLite store (see ``switch.store.imports``): one page, one transaction.

``executemany`` of ``INSERT OR IGNORE`` inside one ``BEGIN IMMEDIATE``: a page of ten thousand
rows costs one commit (one fsync), and a row whose id (or duplicate-transmission key) is taken
is skipped, so a generator run again after a crash writes only what is missing.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Sequence

from switch.domain.batches import BatchItem, ItemKind, check_item
from switch.domain.transactions import COLUMNS, Transaction, check_new
from switch.store.imports import ImportStore
from switch.store.sqlite.host import SqliteHost

_TX_IMPORT = (
    f"INSERT OR IGNORE INTO transactions ({', '.join(COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(COLUMNS))})"
)
_ITEM_IMPORT = (
    "INSERT OR IGNORE INTO batch_items (terminal_id, transaction_id, kind, amount_minor,"
    " currency, scheme, joined_at, batch_no) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _plain(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


class SqliteImports(SqliteHost, ImportStore):
    """Mixin for ``SqliteStore`` (uses its ``_call`` and ``_write``)."""

    async def import_transactions(self, txs: Sequence[Transaction]) -> None:
        for tx in txs:
            check_new(tx)
        rows = [tuple(_plain(getattr(tx, c)) for c in COLUMNS) for tx in txs]
        await self._call(self._import_txs, rows)

    def _import_txs(self, conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> int:
        def body(c: sqlite3.Connection) -> int:
            before = c.total_changes
            c.executemany(_TX_IMPORT, rows)
            return c.total_changes - before

        return self._write(conn, body)

    async def import_batch_items(self, items: Sequence[tuple[str, BatchItem]]) -> None:
        for _, item in items:
            check_item(item)
        await self._call(self._import_items, list(items))

    def _import_items(self, conn: sqlite3.Connection, items: list[tuple[str, BatchItem]]) -> int:
        def body(c: sqlite3.Connection) -> int:
            open_no: dict[str, int] = {}
            for terminal_id in {t for t, _ in items}:
                row = c.execute(
                    "SELECT batch_no FROM batch_open WHERE terminal_id = ?", (terminal_id,)
                ).fetchone()
                if row is None:
                    joined_at = min(i.joined_at for t, i in items if t == terminal_id)
                    c.execute(
                        "INSERT INTO batch_open (terminal_id, batch_no, opened_at)"
                        " VALUES (?, 1, ?)",
                        (terminal_id, joined_at),
                    )
                open_no[terminal_id] = 1 if row is None else int(row[0])
            before = c.total_changes
            c.executemany(
                _ITEM_IMPORT,
                [
                    (
                        t,
                        i.transaction_id,
                        ItemKind(i.kind).value,
                        i.amount_minor,
                        i.currency,
                        i.scheme,
                        i.joined_at,
                        open_no[t],
                    )
                    for t, i in items
                ],
            )
            return c.total_changes - before

        return self._write(conn, body)
