"""The issuer's books for cross-border sales: both amounts of every converted step.

Why a side table: the books' ``authorizations`` row stays in the account's (billing) currency,
as every check and the clearing side expect; what a converted sale adds (the transaction
currency and amount, the scheme's rate and table, what of the transaction amount was posted
and refunded) lives in ``auth_fx``, keyed by the same RRN, and each converted refund in
``refund_fx``. Rules (``payswitch.fx``):

- the authorization holds the billing amount the scheme converted;
- a capture (online or presented in clearing) in the transaction currency is converted at the
  authorization's rate: the cardholder is billed what the authorization told them;
- refunds are converted at the rate the scheme stamped on the refund (the day's), cumulatively
  (``fx.allocate`` over what was refunded before), and bounded in the transaction currency
  (all refunds <= the captured transaction amount): after a rate change the cardholder gets
  the day's value, which may differ from what was posted.

Every function runs inside the caller's write transaction on the books' own thread.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass
from decimal import Decimal

from issuer.books_settlement import PresentmentIn
from payswitch import fx

SCHEMA = """
CREATE TABLE IF NOT EXISTS auth_fx (
    rrn TEXT PRIMARY KEY,
    txn_currency TEXT NOT NULL,
    txn_amount INTEGER NOT NULL,
    rate TEXT NOT NULL,
    rate_table TEXT NOT NULL,
    txn_posted INTEGER NOT NULL DEFAULT 0,
    txn_refunded INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS refund_fx (
    rrn TEXT PRIMARY KEY,
    original_rrn TEXT NOT NULL,
    txn_amount INTEGER NOT NULL,
    billing_amount INTEGER NOT NULL,
    rate TEXT NOT NULL,
    rate_table TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Converted:
    """A conversion the books applied: billing amount and currency, rate, table version."""

    billing_minor: int
    billing_currency: str
    rate: Decimal
    rate_table: str


@dataclass(frozen=True, slots=True)
class AuthFx:
    txn_currency: str
    txn_amount: int
    rate: Decimal
    rate_table: str
    txn_posted: int
    txn_refunded: int


def ensure_schema(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)


def record_auth(
    db: sqlite3.Connection, rrn: str, txn_amount: int, txn_currency: str, c: Converted
) -> None:
    db.execute(
        "INSERT OR IGNORE INTO auth_fx (rrn, txn_currency, txn_amount, rate, rate_table)"
        " VALUES (?, ?, ?, ?, ?)",
        (rrn, txn_currency, txn_amount, fx.format_rate(c.rate), c.rate_table),
    )


def auth_fx(db: sqlite3.Connection, rrn: str) -> AuthFx | None:
    row = db.execute(
        "SELECT txn_currency, txn_amount, rate, rate_table, txn_posted, txn_refunded"
        " FROM auth_fx WHERE rrn = ?",
        (rrn,),
    ).fetchone()
    if row is None:
        return None
    return AuthFx(row[0], row[1], Decimal(row[2]), row[3], row[4], row[5])


def capture_amount(
    db: sqlite3.Connection, rrn: str, amount: int, currency: str, billing_currency: str
) -> Converted | None:
    """A capture of ``amount`` ``currency`` in the billing currency, at the sale's rate; None
    when the capture is in neither the sale's nor the billing currency."""
    f = auth_fx(db, rrn)
    if f is None or currency != f.txn_currency or amount <= 0:
        return None
    billed = fx.convert(amount, currency, billing_currency, f.rate)
    return Converted(billed, billing_currency, f.rate, f.rate_table)


def mark_posted(db: sqlite3.Connection, rrn: str, txn_amount: int) -> None:
    db.execute("UPDATE auth_fx SET txn_posted = ? WHERE rrn = ?", (txn_amount, rrn))


def refund_amount(
    db: sqlite3.Connection,
    original_rrn: str,
    amount: int,
    currency: str,
    billing_currency: str,
    rate: Decimal | None,
    rate_table: str,
) -> Converted | None:
    """A refund's share in the billing currency at ``rate`` (the sale's when None), allocated
    cumulatively; None when it is not in the sale's currency or exceeds what was captured."""
    f = auth_fx(db, original_rrn)
    if f is None or currency != f.txn_currency or amount <= 0:
        return None
    if f.txn_refunded + amount > f.txn_posted:
        return None
    use = f.rate if rate is None else rate
    billed = fx.allocate(f.txn_refunded, amount, currency, billing_currency, use)
    return Converted(billed, billing_currency, use, rate_table or f.rate_table)


def record_refund(
    db: sqlite3.Connection, rrn: str, original_rrn: str, txn_amount: int, c: Converted
) -> None:
    db.execute(
        "UPDATE auth_fx SET txn_refunded = txn_refunded + ? WHERE rrn = ?",
        (txn_amount, original_rrn),
    )
    db.execute(
        "INSERT OR IGNORE INTO refund_fx (rrn, original_rrn, txn_amount, billing_amount, rate,"
        " rate_table) VALUES (?, ?, ?, ?, ?, ?)",
        (rrn, original_rrn, txn_amount, c.billing_minor, fx.format_rate(c.rate), c.rate_table),
    )


def forget_refund(db: sqlite3.Connection, rrn: str) -> None:
    """A reversed refund's share of its sale's conversion (``record_refund``) undone."""
    row = db.execute(
        "SELECT original_rrn, txn_amount FROM refund_fx WHERE rrn = ?", (rrn,)
    ).fetchone()
    if row is None:
        return
    db.execute("UPDATE auth_fx SET txn_refunded = txn_refunded - ? WHERE rrn = ?", (row[1], row[0]))
    db.execute("DELETE FROM refund_fx WHERE rrn = ?", (rrn,))


def applied(db: sqlite3.Connection, kind: str, rrn: str) -> Converted | None:
    """The conversion an approved capture (by original RRN) or refund (by its RRN) applied."""
    if kind == "refund":
        row = db.execute(
            "SELECT r.billing_amount, a.currency, r.rate, r.rate_table FROM refund_fx r"
            " JOIN authorizations a ON a.rrn = r.original_rrn WHERE r.rrn = ?",
            (rrn,),
        ).fetchone()
    else:
        row = db.execute(
            "SELECT a.posted, a.currency, f.rate, f.rate_table FROM auth_fx f"
            " JOIN authorizations a ON a.rrn = f.rrn WHERE f.rrn = ? AND f.txn_posted > 0",
            (rrn,),
        ).fetchone()
    return None if row is None else Converted(row[0], row[1], Decimal(row[2]), row[3])


def presentment_in_billing(db: sqlite3.Connection, p: PresentmentIn) -> PresentmentIn:
    """A clearing presentment of a converted sale, in the sale's transaction currency, as the
    books post it: a capture at the authorization's rate, a refund allocated at it (an online
    refund was posted already at the day's rate; clearing then finds it ALREADY_POSTED).
    Anything else is returned as it is (the books decide it as before)."""
    rrn = p.rrn if p.kind == "CAPTURE" else p.original_rrn
    f = auth_fx(db, rrn)
    if f is None or p.currency != f.txn_currency:
        return p
    row = db.execute("SELECT currency FROM authorizations WHERE rrn = ?", (rrn,)).fetchone()
    billing = row[0]
    if p.kind == "CAPTURE":
        amount = fx.convert(p.amount, p.currency, billing, f.rate)
    else:
        done = db.execute("SELECT billing_amount FROM refund_fx WHERE rrn = ?", (p.rrn,)).fetchone()
        if done is not None:
            amount = done[0]
        else:
            amount = fx.allocate(f.txn_refunded, p.amount, p.currency, billing, f.rate)
    return dataclasses.replace(p, amount=amount, currency=billing)
