"""The three sides of a reconciliation, loaded into plain records.

- the switch: its transactions from the state store (``transactions_in_state`` over the
  states that matter, bounded by ``MAX_TRANSACTIONS`` per state: a larger day fails loudly);
- the acquirer: settlement reports ``<dir>/settlement/<acquirer_id>/<file_id>.json``
  (``payswitch-settlement/1``; see README "Settlement interfaces");
- the issuers: their books (SQLite files, opened read-only; ``issuer.books``'s tables).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from payswitch.settlement.report import ReportFormatError, read_report
from switch.domain.transactions import Transaction, TxState
from switch.store.base import Store

MAX_TRANSACTIONS = 200_000
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


async def switch_transactions(store: Store, until: float) -> list[Transaction]:
    """Transactions in the states reconciliation looks at, with deadline before ``until``."""
    out: list[Transaction] = []
    for state in STATES:
        found = await store.transactions_in_state(state, until, MAX_TRANSACTIONS)
        if len(found) >= MAX_TRANSACTIONS:
            raise ValueError(f"more than {MAX_TRANSACTIONS} {state} transactions: narrow the run")
        out.extend(found)
    return out


def load_reports(directory: str | Path) -> list[Report]:
    """Every settlement report under ``<dir>/settlement/*/``, by acquirer then file id."""
    reports: list[Report] = []
    for path in sorted(Path(directory).glob("settlement/*/*.json")):
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


def read_books(paths: Iterable[str | Path]) -> IssuerBooks:
    """The issuers' authorizations and advices; the issuer id is the file's stem."""
    books = IssuerBooks()
    for path in paths:
        issuer = Path(path).stem
        db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
        try:
            for rrn, state, amount, posted, refunded, currency in db.execute(
                "SELECT rrn, state, amount, posted, refunded, currency FROM authorizations"
            ):
                books.auths[rrn] = IssuerAuth(
                    issuer, rrn, state, amount, posted, refunded, currency
                )
            # Only approved advices are stored (issuer.books): each one moved money or a hold.
            for kind, rrn, original, amount in db.execute(
                "SELECT kind, rrn, original_rrn, amount FROM advices"
            ):
                books.advices.append(IssuerAdvice(issuer, kind, rrn, original, amount))
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            if "chargebacks" in tables:  # books from before chargebacks have none
                for cb_id, rrn, amount, currency in db.execute(
                    "SELECT chargeback_id, rrn, amount, currency FROM chargebacks"
                ):
                    books.chargebacks.append(IssuerChargeback(issuer, cb_id, rrn, amount, currency))
        finally:
            db.close()
    return books
