"""The reconciliation's scratch workspace: a day of any size compared in bounded memory.

Each side is streamed into one SQLite file (the switch's transactions a store page at a
time, the acquirers' report entries one at a time, the issuers' book rows off the cursor,
the switch's disputes), every row keyed by the RRN it is matched under. The comparison then
walks the RRNs in sorted slices of ``SLICE`` and hands each slice's rows, in the order they
were read, to the pure engine (``engine.reconcile``): every rule of the engine matches within
one RRN (a presentment, its report entries and its issuer posting share the sale's or the
refund's RRN; a reversal advice is keyed by its original's RRN; a dispute by its chargeback's
RRN), so the issues and their details are exactly those of one comparison over whole lists.
Issues are kept in the workspace, keyed by (type, kind, RRN), and read back in that order.

The file is the run's own: created owner-only (0600) in a private directory, journal and
fsync off (a crash loses only scratch: the rerun starts it anew), deleted at the end; a
directory left by a killed run is removed by the next run (``sweep_stale``). It holds what
the store holds (tokens and masked PANs, never a PAN).

Blocking: every method is synchronous SQLite; the job calls them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import operator
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from switch.backoffice.recon.engine import reconcile
from switch.backoffice.recon.sources import (
    BookRow,
    IssuerAdvice,
    IssuerAuth,
    IssuerBooks,
    IssuerChargeback,
    Report,
    add_book_row,
)
from switch.domain.ledger import Dispute, DisputeState, IssueStatus, ReconIssue
from switch.domain.transactions import Transaction, TxState, TxType

T = TypeVar("T")

SLICE = 2_000  # RRNs compared at once
CHUNK = 5_000  # rows per executemany
PREFIX = "payswitch-recon-"

_TX_FIELDS = tuple(f.name for f in dataclasses.fields(Transaction))
_DISPUTE_FIELDS = tuple(f.name for f in dataclasses.fields(Dispute))
_ISSUE_FIELDS = tuple(f.name for f in dataclasses.fields(ReconIssue))
_tx_values = operator.attrgetter(*_TX_FIELDS)  # a transaction's fields as one tuple, in C
_TYPE_AT, _STATE_AT = _TX_FIELDS.index("type"), _TX_FIELDS.index("state")

_SCHEMA = """
CREATE TABLE tx (seq INTEGER PRIMARY KEY, rrn TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE report (seq INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE entry (seq INTEGER PRIMARY KEY, report INTEGER NOT NULL, rrn TEXT NOT NULL,
                    data BLOB NOT NULL);
CREATE TABLE book (seq INTEGER PRIMARY KEY, rrn TEXT NOT NULL, kind TEXT NOT NULL,
                   ref TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE dispute (seq INTEGER PRIMARY KEY, rrn TEXT NOT NULL, id TEXT NOT NULL,
                      data BLOB NOT NULL);
CREATE TABLE issue (type TEXT NOT NULL, kind TEXT NOT NULL, rrn TEXT NOT NULL,
                    data BLOB NOT NULL, PRIMARY KEY (type, kind, rrn)) WITHOUT ROWID;
CREATE TABLE keys (rrn TEXT PRIMARY KEY) WITHOUT ROWID;
"""
_INDEXES = """
CREATE INDEX tx_rrn ON tx (rrn, seq);
CREATE INDEX entry_rrn ON entry (rrn, seq);
CREATE INDEX book_rrn ON book (rrn, seq);
CREATE INDEX book_ref ON book (kind, ref, seq);
CREATE INDEX dispute_rrn ON dispute (rrn, seq);
"""


@dataclass(frozen=True, slots=True)
class Counts:
    """Rows read per side (the job's summary)."""

    switch: int
    acquirer: int
    issuer: int
    disputes: int


def sweep_stale(parent: Path) -> None:
    """Remove workspaces of runs whose process is gone (killed mid-run)."""
    for path in parent.glob(f"{PREFIX}*"):
        pid = path.name[len(PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            continue  # another user's live process


class Workspace:
    """One run's scratch file (see the module docstring)."""

    def __init__(self, parent: str | Path | None = None) -> None:
        base = Path(parent) if parent is not None else Path(tempfile.gettempdir())
        sweep_stale(base)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))  # 0700
        self.path = self.dir / "recon.sqlite"
        os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -65536;"
            "PRAGMA temp_store = FILE;" + _SCHEMA
        )
        self.db.execute("BEGIN")
        self._counts = {"switch": 0, "acquirer": 0, "issuer": 0, "disputes": 0}

    def close(self) -> None:
        """Close and delete the file and its directory."""
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def counts(self) -> Counts:
        return Counts(**self._counts)

    # --- loading ------------------------------------------------------------------------
    def add_transactions(self, txs: Sequence[Transaction]) -> None:
        self.db.executemany(
            "INSERT INTO tx (rrn, data) VALUES (?, ?)",
            [(tx.rrn, orjson.dumps(_tx_values(tx))) for tx in txs],
        )
        self._counts["switch"] += len(txs)

    def add_report(self, header: Report, entries: Iterable[dict[str, Any]]) -> None:
        """One report: its header, then its entries streamed in chunks."""
        cur = self.db.execute("INSERT INTO report (data) VALUES (?)", (orjson.dumps(header),))
        seq = cur.lastrowid
        for chunk in _chunks(entries):
            self.db.executemany(
                "INSERT INTO entry (report, rrn, data) VALUES (?, ?, ?)",
                [(seq, str(e.get("rrn", "")), orjson.dumps(e)) for e in chunk],
            )
            self._counts["acquirer"] += len(chunk)

    def add_book_rows(self, rows: Iterable[BookRow]) -> None:
        for chunk in _chunks(rows):
            self.db.executemany(
                "INSERT INTO book (rrn, kind, ref, data) VALUES (?, ?, ?, ?)",
                [_book_row(r) for r in chunk],
            )
            self._counts["issuer"] += len(chunk)

    def add_disputes(self, disputes: Sequence[Dispute]) -> None:
        self.db.executemany(
            "INSERT INTO dispute (rrn, id, data) VALUES (?, ?, ?)",
            [
                (d.rrn, d.dispute_id, orjson.dumps([getattr(d, f) for f in _DISPUTE_FIELDS]))
                for d in disputes
            ],
        )
        self._counts["disputes"] += len(disputes)

    def seal(self) -> None:
        """Loading done: index, key each dispute by its chargeback's RRN (the engine matches
        them by id), list every RRN once."""
        db = self.db
        db.execute("COMMIT")
        db.executescript(_INDEXES)
        db.execute("BEGIN")
        db.execute(
            "UPDATE dispute SET rrn = coalesce((SELECT b.rrn FROM book b WHERE b.kind = 'cb' "
            "AND b.ref = dispute.id ORDER BY b.seq DESC LIMIT 1), rrn)"
        )
        for table in ("tx", "entry", "book", "dispute"):
            db.execute(f"INSERT OR IGNORE INTO keys (rrn) SELECT rrn FROM {table}")  # noqa: S608
        db.execute("COMMIT")
        db.execute("BEGIN")

    # --- comparing ----------------------------------------------------------------------
    def compare(
        self,
        *,
        cutoff: float,
        fee_table: Sequence[Any] | None,
        late_after_s: float,
        with_books: bool,
        slice_size: int | None = None,
    ) -> None:
        """Every slice of RRNs through ``reconcile``; the issues into the workspace."""
        for lo, hi in self._slices(slice_size or SLICE):
            found = reconcile(
                self._txs(lo, hi),
                self._reports(lo, hi),
                self._books(lo, hi) if with_books else None,
                cutoff=cutoff,
                fee_table=fee_table,
                late_after_s=late_after_s,
                disputes=self._disputes(lo, hi),
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO issue (type, kind, rrn, data) VALUES (?, ?, ?, ?)",
                [
                    (i.type, i.kind, i.rrn, orjson.dumps([getattr(i, f) for f in _ISSUE_FIELDS]))
                    for i in found
                ],
            )
        self.db.execute("COMMIT")
        self.db.execute("BEGIN")

    def issue_pages(self, size: int) -> Iterator[list[ReconIssue]]:
        """The issues found, in (type, kind, RRN) order, ``size`` at a time."""
        last: tuple[str, str, str] | None = None
        while True:
            if last is None:
                rows = self.db.execute(
                    "SELECT type, kind, rrn, data FROM issue ORDER BY type, kind, rrn LIMIT ?",
                    (size,),
                ).fetchall()
            else:
                rows = self.db.execute(
                    "SELECT type, kind, rrn, data FROM issue WHERE (type, kind, rrn) > (?, ?, ?) "
                    "ORDER BY type, kind, rrn LIMIT ?",
                    (*last, size),
                ).fetchall()
            if not rows:
                return
            yield [_issue(orjson.loads(r[3])) for r in rows]
            last = (rows[-1][0], rows[-1][1], rows[-1][2])

    def _slices(self, size: int) -> Iterator[tuple[str | None, str]]:
        lo: str | None = None
        while True:
            if lo is None:
                rows = self.db.execute("SELECT rrn FROM keys ORDER BY rrn LIMIT ?", (size,))
            else:
                rows = self.db.execute(
                    "SELECT rrn FROM keys WHERE rrn > ? ORDER BY rrn LIMIT ?", (lo, size)
                )
            found = rows.fetchall()
            if not found:
                return
            hi = found[-1][0]
            yield lo, hi
            lo = hi

    def _rows(self, table: str, columns: str, lo: str | None, hi: str) -> list[Any]:
        if lo is None:
            sql = f"SELECT {columns} FROM {table} WHERE rrn <= ? ORDER BY seq"  # noqa: S608
            return self.db.execute(sql, (hi,)).fetchall()
        sql = f"SELECT {columns} FROM {table} WHERE rrn > ? AND rrn <= ? ORDER BY seq"  # noqa: S608
        return self.db.execute(sql, (lo, hi)).fetchall()

    def _txs(self, lo: str | None, hi: str) -> list[Transaction]:
        out = []
        for (data,) in self._rows("tx", "data", lo, hi):
            values = orjson.loads(data)
            values[_TYPE_AT] = TxType(values[_TYPE_AT])
            values[_STATE_AT] = TxState(values[_STATE_AT])
            out.append(Transaction(*values))
        return out

    def _reports(self, lo: str | None, hi: str) -> list[Report]:
        reports: dict[int, Report] = {}
        for report_seq, data in self._rows("entry", "report, data", lo, hi):
            report = reports.get(report_seq)
            if report is None:
                row = self.db.execute("SELECT data FROM report WHERE seq = ?", (report_seq,))
                report = reports[report_seq] = {**orjson.loads(row.fetchone()[0]), "entries": []}
            report["entries"].append(orjson.loads(data))
        return [reports[k] for k in sorted(reports)]

    def _books(self, lo: str | None, hi: str) -> IssuerBooks:
        books = IssuerBooks()
        for kind, data in self._rows("book", "kind, data", lo, hi):
            add_book_row(books, _BOOK_TYPES[kind](*orjson.loads(data)))
        return books

    def _disputes(self, lo: str | None, hi: str) -> list[Dispute]:
        out = []
        for (data,) in self._rows("dispute", "data", lo, hi):
            values = dict(zip(_DISPUTE_FIELDS, orjson.loads(data), strict=True))
            values["state"] = DisputeState(values["state"])
            out.append(Dispute(**values))
        return out


_BOOK_TYPES: dict[str, type[IssuerAuth] | type[IssuerAdvice] | type[IssuerChargeback]] = {
    "auth": IssuerAuth,
    "advice": IssuerAdvice,
    "cb": IssuerChargeback,
}


def _issue(values: list[Any]) -> ReconIssue:
    fields = dict(zip(_ISSUE_FIELDS, values, strict=True))
    fields["status"] = IssueStatus(fields["status"])
    return ReconIssue(**fields)


_BOOK_FIELDS = {
    t: operator.attrgetter(*(f.name for f in dataclasses.fields(t))) for t in _BOOK_TYPES.values()
}


def _book_row(row: BookRow) -> tuple[str, str, str, bytes]:
    """(key RRN, kind, ref, data): a reversal advice is matched under its original's RRN."""
    data = orjson.dumps(_BOOK_FIELDS[type(row)](row))
    if isinstance(row, IssuerAuth):
        return row.rrn, "auth", "", data
    if isinstance(row, IssuerAdvice):
        key = row.original_rrn if row.kind == "reversal" else row.rrn
        return key, "advice", "", data
    return row.rrn, "cb", row.chargeback_id, data


def _chunks(items: Iterable[T]) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
