"""Terminal revocations on SQLite: one small table, written in its own transaction."""

from __future__ import annotations

import sqlite3

from switch.domain.revocations import Revocation, check_terminal_id
from switch.store.revocations import RevocationStore
from switch.store.sqlite.host import SqliteHost

SCHEMA = """
CREATE TABLE IF NOT EXISTS terminal_revocations (
    terminal_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    revoked_at REAL NOT NULL
);
"""


class SqliteRevocations(SqliteHost, RevocationStore):
    """Mixin for ``SqliteStore`` (uses its ``_call`` and ``_write``)."""

    async def revoke_terminal(self, terminal_id: str, reason: str, now: float) -> Revocation:
        check_terminal_id(terminal_id)
        await self._call(self._revoke, terminal_id, reason, now)
        return Revocation(terminal_id, reason, now)

    def _revoke(self, conn: sqlite3.Connection, terminal_id: str, reason: str, now: float) -> None:
        def body(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO terminal_revocations (terminal_id, reason, revoked_at) "
                "VALUES (?, ?, ?) ON CONFLICT (terminal_id) DO UPDATE SET "
                "reason = excluded.reason, revoked_at = excluded.revoked_at",
                (terminal_id, reason, now),
            )

        self._write(conn, body)

    async def reinstate_terminal(self, terminal_id: str) -> bool:
        check_terminal_id(terminal_id)
        return await self._call(self._reinstate, terminal_id)

    def _reinstate(self, conn: sqlite3.Connection, terminal_id: str) -> bool:
        def body(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "DELETE FROM terminal_revocations WHERE terminal_id = ?", (terminal_id,)
            )
            return cur.rowcount == 1

        return self._write(conn, body)

    async def revoked_terminals(self) -> list[Revocation]:
        return await self._call(self._revoked)

    @staticmethod
    def _revoked(conn: sqlite3.Connection) -> list[Revocation]:
        rows = conn.execute(
            "SELECT terminal_id, reason, revoked_at FROM terminal_revocations ORDER BY terminal_id"
        ).fetchall()
        return [Revocation(str(t), str(r), float(at)) for t, r, at in rows]
