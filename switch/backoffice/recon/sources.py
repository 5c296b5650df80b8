"""The three sides of a reconciliation, as plain records: streamed (issue 17) or whole.

- the switch: its transactions from the state store (``transactions_in_state`` over the
  states that matter, in pages of ``PAGE``: ``switch_pages``);
- the acquirer: settlement reports ``<dir>/settlement/<acquirer_id>/<file_id>.json``
  (``payswitch-settlement/2`` JSON lines, or a /1 document; see README "Settlement
  interfaces"), their entries read a page at a time (``open_report``);
- the issuers: their books (SQLite files, opened read-only; ``issuer.books``'s tables), rows
  read off the cursor (``book_rows``).

The whole-list forms (``switch_transactions``, ``load_reports``, ``read_books``) are for small
days and tests; the reconciliation job streams (``switch.backoffice.recon.workspace``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from payswitch.settlement.report import (
    FORMAT_STREAM,
    ReportFormatError,
    iter_report,
    read_report,
)
from switch.domain.transactions import Transaction, TxState
from switch.store.base import Store

PAGE = 1_000  # transactions per store read
REPORT_PAGE = 1_000  # report entries per read
STATES = (
    TxState.APPROVED,
    TxState.CAPTURED,
    TxState.SETTLED,
    TxState.VOIDED,
    TxState.REVERSED,
    TxState.STOOD_IN,
    TxState.ADVISED,
)
REPORT_FORMAT = "payswitch-settlement/1"

# A settlement report as JSON gives it (format: ``payswitch.settlement.report``); its entries
# are dict[str, Any] too.
Report = dict[str, Any]


async def switch_pages(
    store: Store, until: float, page: int = PAGE
) -> AsyncIterator[list[Transaction]]:
    """Transactions in the states reconciliation looks at, with deadline before ``until``, a
    page at a time: state by state, each in (deadline_at, id) order."""
    for state in STATES:
        after: tuple[float, str] | None = None
        while True:
            found = await store.transactions_in_state(state, until, page, after)
            if found:
                yield found
            if len(found) < page:
                break
            after = (found[-1].deadline_at, found[-1].id)


async def switch_transactions(store: Store, until: float) -> list[Transaction]:
    """``switch_pages`` as one list (a small day)."""
    return [tx async for found in switch_pages(store, until) for tx in found]


def report_paths(directory: str | Path) -> list[Path]:
    """Every settlement report under ``<dir>/settlement/*/``, by acquirer then file id."""
    return sorted(Path(directory).glob("settlement/*/*.json"))


def open_report(path: Path) -> tuple[Report, Iterator[dict[str, Any]]]:
    """A report's header (the document without its entries) and its entries: a
    ``payswitch-settlement/2`` stream read a page at a time (``iter_report``), a /1 document
    (the small days' and tests' format) whole; totals are not checked (the comparison is
    per entry). ValueError naming the file."""
    try:
        with path.open("rb") as fh:
            first = json.loads(fh.readline() or b"null")
    except (OSError, ValueError):
        first = None
    try:
        if isinstance(first, dict) and first.get("format") == FORMAT_STREAM:
            reader = iter_report(path)
        else:
            doc = read_report(path, check_totals=False)
            entries = doc.pop("entries", [])
            return doc, iter(entries)
    except ReportFormatError as exc:
        raise ValueError(f"{path}: not a {REPORT_FORMAT} report ({exc})") from None

    def paged() -> Iterator[dict[str, Any]]:
        try:
            while page := reader.page(REPORT_PAGE):
                yield from page
        except ReportFormatError as exc:
            raise ValueError(f"{path}: {exc}") from None

    return reader.header, paged()


def load_reports(directory: str | Path) -> list[Report]:
    """Every settlement report, whole (a small day)."""
    reports: list[Report] = []
    for path in report_paths(directory):
        try:  # either version: a /2 stream is gathered as the /1 document
            doc = read_report(path, check_totals=False)
        except ReportFormatError as exc:
            raise ValueError(f"{path}: not a {REPORT_FORMAT} report ({exc})") from None
        reports.append(doc)
    return reports


@dataclass(frozen=True, slots=True)
class IssuerAuth:
    issuer_id: str
    rrn: str
    state: str  # issuer.books: HELD, POSTED, RELEASED, DECLINED, REVERSED_EARLY
    amount: int
    posted: int
    refunded: int
    currency: str


@dataclass(frozen=True, slots=True)
class IssuerAdvice:
    issuer_id: str
    kind: str  # reversal, capture, refund
    rrn: str
    original_rrn: str
    amount: int


@dataclass(frozen=True, slots=True)
class IssuerChargeback:
    issuer_id: str
    chargeback_id: str
    rrn: str
    amount: int
    currency: str


@dataclass
class IssuerBooks:
    auths: dict[str, IssuerAuth] = field(default_factory=dict)
    advices: list[IssuerAdvice] = field(default_factory=list)
    chargebacks: list[IssuerChargeback] = field(default_factory=list)

    def refund(self, rrn: str) -> IssuerAdvice | None:
        return next((a for a in self.advices if a.kind == "refund" and a.rrn == rrn), None)


BookRow = IssuerAuth | IssuerAdvice | IssuerChargeback


def book_rows(paths: Iterable[str | Path]) -> Iterator[BookRow]:
    """The issuers' authorizations, advices and chargebacks, one row at a time off the
    cursor, file by file; the issuer id is the file's stem."""
    for path in paths:
        issuer = Path(path).stem
        db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
        try:
            for rrn, state, amount, posted, refunded, currency in db.execute(
                "SELECT rrn, state, amount, posted, refunded, currency FROM authorizations"
            ):
                yield IssuerAuth(issuer, rrn, state, amount, posted, refunded, currency)
            # Only approved advices are stored (issuer.books): each one moved money or a hold.
            for kind, rrn, original, amount in db.execute(
                "SELECT kind, rrn, original_rrn, amount FROM advices"
            ):
                yield IssuerAdvice(issuer, kind, rrn, original, amount)
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            if "chargebacks" in tables:  # books from before chargebacks have none
                for cb_id, rrn, amount, currency in db.execute(
                    "SELECT chargeback_id, rrn, amount, currency FROM chargebacks"
                ):
                    yield IssuerChargeback(issuer, cb_id, rrn, amount, currency)
        finally:
            db.close()


def add_book_row(books: IssuerBooks, row: BookRow) -> None:
    """One row into ``books`` (a later authorization of one RRN replaces the earlier)."""
    if isinstance(row, IssuerAuth):
        books.auths[row.rrn] = row
    elif isinstance(row, IssuerAdvice):
        books.advices.append(row)
    else:
        books.chargebacks.append(row)


def read_books(paths: Iterable[str | Path]) -> IssuerBooks:
    """The issuers' authorizations and advices, whole (a small day)."""
    books = IssuerBooks()
    for row in book_rows(paths):
        add_book_row(books, row)
    return books
