"""SQLite backend of the ledger, reconciliation issues and disputes
(``LedgerStore``, ``ReconStore``, ``DisputeStore``).

A posting is one ``BEGIN IMMEDIATE`` transaction: ``INSERT OR IGNORE`` of the posting row
(the idempotency key) and its lines, so there is no state between claim and entries to
recover from. Tables are ``CREATE TABLE IF NOT EXISTS`` at open (``LEDGER_SCHEMA``).

``ledger_lines`` is clustered in the order it is read (``WITHOUT ROWID``, keyed by currency,
posted_at, posting id, line): a page of postings appends its lines at the B-tree's right
edge, where a rowid table keyed by the random posting id (schema version 2) also wrote one
random leaf of its primary-key index per line, the largest random-write structure of a
day's cut-off (issue 17: 42 MiB at 100k transactions, 10x that at 1M, out of cache). The
lines' uniqueness is the posting's: they are written only by the insert that claimed the
posting id. ``LINES_V3`` rebuilds a version-2 table (``SqliteStore._migrate``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from switch.domain.errors import NotFound
from switch.domain.ledger import (
    DISPUTE_COLUMNS,
    ISSUE_COLUMNS,
    Dispute,
    DisputeChanges,
    DisputeConflict,
    DisputeState,
    IssueStatus,
    LedgerEntry,
    LedgerPosting,
    PostingConflict,
    ReconIssue,
    check_dispute_transition,
    check_posting,
)
from switch.store.ledger import check_limit
from switch.store.sqlite.host import SqliteHost

_LINES_TABLE = """ledger_lines (
    posting_id TEXT NOT NULL,
    line_no INTEGER NOT NULL,
    account TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    posted_at REAL NOT NULL,
    transaction_id TEXT NOT NULL,
    PRIMARY KEY (currency, posted_at, posting_id, line_no)
) WITHOUT ROWID"""

LEDGER_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS ledger_postings (
    posting_id TEXT PRIMARY KEY,
    transaction_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    rrn TEXT NOT NULL,
    currency TEXT NOT NULL,
    posted_at REAL NOT NULL,
    lines TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_postings_by_rrn ON ledger_postings (rrn) WHERE rrn != '';
CREATE TABLE IF NOT EXISTS """
    + _LINES_TABLE
    + """;
CREATE TABLE IF NOT EXISTS recon_issues (
    issue_id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    kind TEXT NOT NULL,
    rrn TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    detail TEXT NOT NULL,
    status TEXT NOT NULL,
    note TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    resolved_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS recon_issues_in_order ON recon_issues (first_seen, issue_id);
CREATE TABLE IF NOT EXISTS disputes (
    dispute_id TEXT PRIMARY KEY,
    transaction_id TEXT NOT NULL,
    rrn TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    acquirer_id TEXT NOT NULL,
    issuer_id TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    state TEXT NOT NULL,
    raised_at REAL NOT NULL,
    representment_due REAL NOT NULL,
    response_due REAL NOT NULL,
    evidence TEXT NOT NULL,
    note TEXT NOT NULL,
    updated_at REAL NOT NULL,
    version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS disputes_in_order ON disputes (raised_at, dispute_id);
CREATE INDEX IF NOT EXISTS disputes_by_transaction ON disputes (transaction_id);
"""
)

# Schema 2 -> 3: ledger_lines from a rowid table keyed (posting_id, line_no) plus an index on
# (currency, posted_at) to the clustered table above, rows copied in its key order.
LINES_V3 = (
    "ALTER TABLE ledger_lines RENAME TO ledger_lines_v2",
    "DROP INDEX IF EXISTS ledger_lines_by_currency",
    f"CREATE TABLE {_LINES_TABLE}",
    "INSERT INTO ledger_lines (posting_id, line_no, account, currency, amount_minor, "
    "posted_at, transaction_id) SELECT posting_id, line_no, account, currency, amount_minor, "
    "posted_at, transaction_id FROM ledger_lines_v2 ORDER BY currency, posted_at, posting_id, "
    "line_no",
    "DROP TABLE ledger_lines_v2",
)

_POSTING_SELECT = (
    "SELECT posting_id, transaction_id, kind, rrn, currency, posted_at, lines FROM ledger_postings"
)
_ISSUE_SELECT = f"SELECT {', '.join(ISSUE_COLUMNS)} FROM recon_issues"  # noqa: S608
_DISPUTE_SELECT = f"SELECT {', '.join(DISPUTE_COLUMNS)} FROM disputes"  # noqa: S608


def _cursor(values: Sequence[object]) -> str:
    return json.dumps(list(values))


def _after(cursor: str, names: str) -> tuple[str, list[object]]:
    """The keyset condition past ``cursor`` (our own JSON of the last row's order key)."""
    if not cursor:
        return "", []
    try:
        values = json.loads(cursor)
    except ValueError:
        raise ValueError(f"cursor: not a cursor this store gave ({cursor[:40]!r})") from None
    if not isinstance(values, list) or len(values) != names.count(",") + 1:
        raise ValueError(f"cursor: not a cursor this store gave ({cursor[:40]!r})")
    marks = ", ".join("?" * len(values))
    return f" AND ({names}) > ({marks})", values


def _page_end(rows: list[Any], limit: int, key: Any) -> str:
    return _cursor(key(rows[-1])) if rows and len(rows) >= limit else ""


def _posting(row: tuple[Any, ...]) -> LedgerPosting:
    pid, tx_id, kind, rrn, currency, posted_at, lines = row
    return LedgerPosting(
        pid, tx_id, kind, rrn, currency, posted_at, LedgerPosting.lines_from_json(lines, currency)
    )


def _issue(row: tuple[Any, ...]) -> ReconIssue:
    values = dict(zip(ISSUE_COLUMNS, row, strict=True))
    values["status"] = IssueStatus(values["status"])
    return ReconIssue(**values)


def _dispute(row: tuple[Any, ...]) -> Dispute:
    values = dict(zip(DISPUTE_COLUMNS, row, strict=True))
    values["state"] = DisputeState(values["state"])
    return Dispute(**values)


def _insert_posting(c: sqlite3.Connection, p: LedgerPosting) -> bool:
    """Insert one posting unless its id is there (then: same content or PostingConflict)."""
    cur = c.execute(
        "INSERT OR IGNORE INTO ledger_postings (posting_id, transaction_id, kind, rrn, "
        "currency, posted_at, lines) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (p.posting_id, p.transaction_id, p.kind, p.rrn, p.currency, p.posted_at,
         p.lines_json()),
    )  # fmt: skip
    if cur.rowcount != 1:
        row = c.execute(f"{_POSTING_SELECT} WHERE posting_id = ?", (p.posting_id,))
        existing = _posting(row.fetchone())
        if not existing.same_content(p):
            raise PostingConflict(f"posting {p.posting_id} exists with other lines")
        return False
    c.executemany(
        "INSERT INTO ledger_lines (posting_id, line_no, account, currency, amount_minor, "
        "posted_at, transaction_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (p.posting_id, i, x.account, x.currency, x.amount_minor, p.posted_at,
             p.transaction_id)
            for i, x in enumerate(p.lines)
        ],
    )  # fmt: skip
    return True


class SqliteLedgerMixin(SqliteHost):
    """Mixed into ``SqliteStore``: uses its ``_call`` (store thread) and ``_write``."""

    # --- ledger -------------------------------------------------------------------------
    async def ledger_post(self, posting: LedgerPosting) -> bool:
        check_posting(posting)
        return await self._call(self._ledger_post, posting)

    async def ledger_post_many(self, postings: Sequence[LedgerPosting]) -> int:
        page = list(postings)
        for p in page:
            check_posting(p)
        if not page:
            return 0
        return await self._call(self._ledger_post_many, page)

    def _ledger_post_many(self, conn: sqlite3.Connection, page: list[LedgerPosting]) -> int:
        """The page in one BEGIN IMMEDIATE ... COMMIT: one fsync for all of it."""
        return self._write(conn, lambda c: sum(_insert_posting(c, p) for p in page))

    def _ledger_post(self, conn: sqlite3.Connection, p: LedgerPosting) -> bool:
        return self._write(conn, lambda c: _insert_posting(c, p))

    async def ledger_get(self, posting_id: str) -> LedgerPosting | None:
        def read(conn: sqlite3.Connection) -> LedgerPosting | None:
            row = conn.execute(f"{_POSTING_SELECT} WHERE posting_id = ?", (posting_id,))
            found = row.fetchone()
            return None if found is None else _posting(found)

        return await self._call(read)

    async def ledger_entries(self, currency: str, until: float | None = None) -> list[LedgerEntry]:
        limit = float("inf") if until is None else until

        def read(conn: sqlite3.Connection) -> list[LedgerEntry]:
            rows = conn.execute(
                "SELECT posting_id, line_no, account, currency, amount_minor, posted_at, "
                "transaction_id FROM ledger_lines WHERE currency = ? AND posted_at <= ? "
                "ORDER BY posted_at, posting_id, line_no",
                (currency, limit),
            ).fetchall()
            return [LedgerEntry(*r) for r in rows]

        return await self._call(read)

    async def ledger_entries_page(
        self, currency: str, until: float | None, cursor: str, limit: int
    ) -> tuple[list[LedgerEntry], str]:
        check_limit(limit)
        upto = float("inf") if until is None else until
        cond, values = _after(cursor, "posted_at, posting_id, line_no")
        sql = (
            "SELECT posting_id, line_no, account, currency, amount_minor, posted_at, "  # noqa: S608
            f"transaction_id FROM ledger_lines WHERE currency = ? AND posted_at <= ?{cond} "
            "ORDER BY posted_at, posting_id, line_no LIMIT ?"
        )

        def read(conn: sqlite3.Connection) -> tuple[list[LedgerEntry], str]:
            rows = conn.execute(sql, (currency, upto, *values, limit)).fetchall()
            found = [LedgerEntry(*r) for r in rows]
            return found, _page_end(found, limit, lambda e: (e.posted_at, e.posting_id, e.line_no))

        return await self._call(read)

    async def ledger_currencies(self) -> list[str]:
        def read(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute("SELECT DISTINCT currency FROM ledger_postings ORDER BY 1")
            return [r[0] for r in rows.fetchall()]

        return await self._call(read)

    async def ledger_postings_for_rrn(self, rrn: str) -> list[LedgerPosting]:
        def read(conn: sqlite3.Connection) -> list[LedgerPosting]:
            rows = conn.execute(
                f"{_POSTING_SELECT} WHERE rrn = ? AND rrn != '' ORDER BY posted_at, posting_id",
                (rrn,),
            )
            return [_posting(r) for r in rows.fetchall()]

        return await self._call(read)

    # --- reconciliation issues ------------------------------------------------------------
    async def recon_upsert(self, issue: ReconIssue, now: float) -> bool:
        def body(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                f"INSERT OR IGNORE INTO recon_issues ({', '.join(ISSUE_COLUMNS)}) "  # noqa: S608
                f"VALUES ({', '.join('?' * len(ISSUE_COLUMNS))})",
                (issue.issue_id, issue.type, issue.kind, issue.rrn, issue.transaction_id,
                 issue.currency, issue.detail, IssueStatus.OPEN.value, "", now, now, 0.0),
            )  # fmt: skip
            if cur.rowcount == 1:
                return True
            c.execute(
                "UPDATE recon_issues SET last_seen = ?, detail = ? WHERE issue_id = ?",
                (now, issue.detail, issue.issue_id),
            )
            return False

        return await self._call(lambda conn: self._write(conn, body))

    async def recon_get(self, issue_id: str) -> ReconIssue | None:
        def read(conn: sqlite3.Connection) -> ReconIssue | None:
            row = conn.execute(f"{_ISSUE_SELECT} WHERE issue_id = ?", (issue_id,)).fetchone()
            return None if row is None else _issue(row)

        return await self._call(read)

    async def recon_issues(self, status: IssueStatus | None = None) -> list[ReconIssue]:
        def read(conn: sqlite3.Connection) -> list[ReconIssue]:
            if status is None:
                rows = conn.execute(f"{_ISSUE_SELECT} ORDER BY first_seen, issue_id")
            else:
                rows = conn.execute(
                    f"{_ISSUE_SELECT} WHERE status = ? ORDER BY first_seen, issue_id",
                    (IssueStatus(status).value,),
                )
            return [_issue(r) for r in rows.fetchall()]

        return await self._call(read)

    async def recon_issues_page(
        self, status: IssueStatus | None, cursor: str, limit: int
    ) -> tuple[list[ReconIssue], str]:
        check_limit(limit)
        cond, values = _after(cursor, "first_seen, issue_id")
        if status is not None:
            cond += " AND status = ?"
            values.append(IssueStatus(status).value)
        sql = f"{_ISSUE_SELECT} WHERE 1 = 1{cond} ORDER BY first_seen, issue_id LIMIT ?"

        def read(conn: sqlite3.Connection) -> tuple[list[ReconIssue], str]:
            found = [_issue(r) for r in conn.execute(sql, (*values, limit)).fetchall()]
            return found, _page_end(found, limit, lambda i: (i.first_seen, i.issue_id))

        return await self._call(read)

    async def recon_set_status(
        self, issue_id: str, status: IssueStatus, note: str, now: float
    ) -> ReconIssue:
        status = IssueStatus(status)
        if status is IssueStatus.OPEN:
            raise ValueError("status: an issue is resolved as RESOLVED or IGNORED")

        def body(c: sqlite3.Connection) -> ReconIssue:
            row = c.execute(f"{_ISSUE_SELECT} WHERE issue_id = ?", (issue_id,)).fetchone()
            if row is None:
                raise NotFound(f"no reconciliation issue {issue_id}")
            if _issue(row).status is not IssueStatus.OPEN:
                raise ValueError(f"issue {issue_id} is {row[7]}, not OPEN")
            c.execute(
                "UPDATE recon_issues SET status = ?, note = ?, resolved_at = ? WHERE issue_id = ?",
                (status.value, note, now, issue_id),
            )
            return _issue(c.execute(f"{_ISSUE_SELECT} WHERE issue_id = ?", (issue_id,)).fetchone())

        return await self._call(lambda conn: self._write(conn, body))

    # --- disputes ---------------------------------------------------------------------------
    async def dispute_create(self, dispute: Dispute) -> tuple[Dispute, bool]:
        values = tuple(
            v.value if isinstance(v, DisputeState) else v
            for v in (getattr(dispute, c) for c in DISPUTE_COLUMNS)
        )

        def body(c: sqlite3.Connection) -> tuple[Dispute, bool]:
            cur = c.execute(
                f"INSERT OR IGNORE INTO disputes ({', '.join(DISPUTE_COLUMNS)}) "  # noqa: S608
                f"VALUES ({', '.join('?' * len(DISPUTE_COLUMNS))})",
                values,
            )
            row = c.execute(f"{_DISPUTE_SELECT} WHERE dispute_id = ?", (dispute.dispute_id,))
            return _dispute(row.fetchone()), cur.rowcount == 1

        return await self._call(lambda conn: self._write(conn, body))

    async def dispute_get(self, dispute_id: str) -> Dispute | None:
        def read(conn: sqlite3.Connection) -> Dispute | None:
            row = conn.execute(f"{_DISPUTE_SELECT} WHERE dispute_id = ?", (dispute_id,))
            found = row.fetchone()
            return None if found is None else _dispute(found)

        return await self._call(read)

    async def dispute_transition(
        self,
        dispute_id: str,
        from_state: DisputeState,
        to_state: DisputeState,
        changes: DisputeChanges,
    ) -> Dispute:
        columns = check_dispute_transition(from_state, to_state, changes)
        sets = ", ".join(f"{k} = ?" for k in columns)
        sql = (
            f"UPDATE disputes SET state = ?{', ' if sets else ''}{sets}, version = version + 1 "  # noqa: S608
            "WHERE dispute_id = ? AND state = ?"
        )
        params = (to_state.value, *columns.values(), dispute_id, from_state.value)

        def body(c: sqlite3.Connection) -> Dispute:
            updated = c.execute(sql, params).rowcount
            row = c.execute(f"{_DISPUTE_SELECT} WHERE dispute_id = ?", (dispute_id,)).fetchone()
            if row is None:
                raise NotFound(f"no dispute {dispute_id}")
            if updated != 1:
                raise DisputeConflict(_dispute(row))
            return _dispute(row)

        return await self._call(lambda conn: self._write(conn, body))

    async def disputes(self, state: DisputeState | None = None) -> list[Dispute]:
        def read(conn: sqlite3.Connection) -> list[Dispute]:
            if state is None:
                rows = conn.execute(f"{_DISPUTE_SELECT} ORDER BY raised_at, dispute_id")
            else:
                rows = conn.execute(
                    f"{_DISPUTE_SELECT} WHERE state = ? ORDER BY raised_at, dispute_id",
                    (DisputeState(state).value,),
                )
            return [_dispute(r) for r in rows.fetchall()]

        return await self._call(read)

    async def disputes_of(self, transaction_id: str) -> list[Dispute]:
        def read(conn: sqlite3.Connection) -> list[Dispute]:
            rows = conn.execute(
                f"{_DISPUTE_SELECT} WHERE transaction_id = ? ORDER BY raised_at, dispute_id",
                (transaction_id,),
            )
            return [_dispute(r) for r in rows.fetchall()]

        return await self._call(read)

    async def disputes_page(
        self, state: DisputeState | None, cursor: str, limit: int
    ) -> tuple[list[Dispute], str]:
        check_limit(limit)
        cond, values = _after(cursor, "raised_at, dispute_id")
        if state is not None:
            cond += " AND state = ?"
            values.append(DisputeState(state).value)
        sql = f"{_DISPUTE_SELECT} WHERE 1 = 1{cond} ORDER BY raised_at, dispute_id LIMIT ?"

        def read(conn: sqlite3.Connection) -> tuple[list[Dispute], str]:
            found = [_dispute(r) for r in conn.execute(sql, (*values, limit)).fetchall()]
            return found, _page_end(found, limit, lambda d: (d.raised_at, d.dispute_id))

        return await self._call(read)
