"""Offline claims, cases and upload marks on SQLite (tables made with CREATE TABLE IF NOT
EXISTS at open: older stores gain them without a schema bump)."""

from __future__ import annotations

import sqlite3
from typing import Any

from switch.domain.offline import Claimed, ClaimOutcome, OfflineCase, OfflineClaim
from switch.store.offline import OfflineStore
from switch.store.sqlite.host import SqliteHost

SCHEMA = """
CREATE TABLE IF NOT EXISTS offline_claims (
    allowance_id TEXT NOT NULL, counter INTEGER NOT NULL, digest TEXT NOT NULL,
    terminal_id TEXT NOT NULL, amount INTEGER NOT NULL, prev_hash TEXT NOT NULL,
    claimed_at REAL NOT NULL, PRIMARY KEY (allowance_id, counter)
);
CREATE TABLE IF NOT EXISTS offline_cases (
    case_id TEXT PRIMARY KEY, allowance_id TEXT NOT NULL, counter INTEGER NOT NULL,
    digest TEXT NOT NULL, terminal_id TEXT NOT NULL, problems TEXT NOT NULL,
    liability TEXT NOT NULL, paid INTEGER NOT NULL, amount INTEGER NOT NULL,
    currency TEXT NOT NULL, evidence TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS offline_uploads (
    terminal_id TEXT PRIMARY KEY, seq INTEGER NOT NULL
);
"""

_CLAIM_COLS = "allowance_id, counter, digest, terminal_id, amount, prev_hash, claimed_at"
_CASE_COLS = (
    "case_id, allowance_id, counter, digest, terminal_id, problems, liability, paid, amount, "
    "currency, evidence, created_at"
)


def _claim(row: Any) -> OfflineClaim:
    a, c, d, t, amount, prev, at = row
    return OfflineClaim(str(a), int(c), str(d), str(t), int(amount), str(prev), float(at))


def _case(row: Any) -> OfflineCase:
    cid, a, c, d, t, problems, liab, paid, amount, cur, ev, at = row
    return OfflineCase(
        str(cid), str(a), int(c), str(d), str(t), tuple(str(problems).split(",")), str(liab),
        bool(paid), int(amount), str(cur), str(ev), float(at),
    )  # fmt: skip


class SqliteOffline(SqliteHost, OfflineStore):
    """Mixin for ``SqliteStore``."""

    async def claim_offline_spend(self, claim: OfflineClaim) -> Claimed:
        return await self._call(self._offline_claim_spend, claim)

    def _offline_claim_spend(self, conn: sqlite3.Connection, claim: OfflineClaim) -> Claimed:
        def body(c: sqlite3.Connection) -> Claimed:
            cur = c.execute(
                f"INSERT OR IGNORE INTO offline_claims ({_CLAIM_COLS}) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    claim.allowance_id, claim.counter, claim.digest, claim.terminal_id,
                    claim.amount, claim.prev_hash, claim.claimed_at,
                ),
            )  # fmt: skip
            if cur.rowcount == 1:
                return Claimed(ClaimOutcome.NEW, claim)
            holder = _claim(
                c.execute(
                    f"SELECT {_CLAIM_COLS} FROM offline_claims "  # noqa: S608
                    "WHERE allowance_id = ? AND counter = ?",
                    (claim.allowance_id, claim.counter),
                ).fetchone()
            )
            same = holder.digest == claim.digest
            return Claimed(ClaimOutcome.SAME if same else ClaimOutcome.CONFLICT, holder)

        return self._write(conn, body)

    async def offline_claims(self, allowance_id: str) -> list[OfflineClaim]:
        return await self._call(self._offline_claims_of, allowance_id)

    @staticmethod
    def _offline_claims_of(conn: sqlite3.Connection, allowance_id: str) -> list[OfflineClaim]:
        rows = conn.execute(
            f"SELECT {_CLAIM_COLS} FROM offline_claims WHERE allowance_id = ? "  # noqa: S608
            "ORDER BY counter",
            (allowance_id,),
        ).fetchall()
        return [_claim(r) for r in rows]

    async def record_offline_case(self, case: OfflineCase) -> bool:
        return await self._call(self._offline_record_case, case)

    def _offline_record_case(self, conn: sqlite3.Connection, case: OfflineCase) -> bool:
        def body(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                f"INSERT OR IGNORE INTO offline_cases ({_CASE_COLS}) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    case.case_id, case.allowance_id, case.counter, case.digest,
                    case.terminal_id, ",".join(case.problems), case.liability, int(case.paid),
                    case.amount, case.currency, case.evidence, case.created_at,
                ),
            )  # fmt: skip
            return cur.rowcount == 1

        return self._write(conn, body)

    async def offline_cases(self) -> list[OfflineCase]:
        return await self._call(self._offline_cases)

    @staticmethod
    def _offline_cases(conn: sqlite3.Connection) -> list[OfflineCase]:
        rows = conn.execute(
            f"SELECT {_CASE_COLS} FROM offline_cases ORDER BY case_id"  # noqa: S608
        ).fetchall()
        return [_case(r) for r in rows]

    async def offline_upload_mark(self, terminal_id: str) -> int:
        return await self._call(self._offline_mark, terminal_id)

    @staticmethod
    def _offline_mark(conn: sqlite3.Connection, terminal_id: str) -> int:
        row = conn.execute(
            "SELECT seq FROM offline_uploads WHERE terminal_id = ?", (terminal_id,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    async def advance_offline_upload_mark(self, terminal_id: str, seq: int) -> int:
        return await self._call(self._offline_advance, terminal_id, seq)

    def _offline_advance(self, conn: sqlite3.Connection, terminal_id: str, seq: int) -> int:
        def body(c: sqlite3.Connection) -> int:
            c.execute(
                "INSERT INTO offline_uploads (terminal_id, seq) VALUES (?, ?) "
                "ON CONFLICT (terminal_id) DO UPDATE SET seq = max(seq, excluded.seq)",
                (terminal_id, seq),
            )
            return self._offline_mark(c, terminal_id)

        return self._write(conn, body)
