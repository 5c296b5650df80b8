"""Bulk load of an issuer's books: a generated day's holds, postings, advices and chargebacks.

What the live issuer writes one operation at a time (``issuer.books``: an authorization's
hold (a converted sale's with its ``books_fx`` row), an online capture's posting, a refund's
credit, a stand-in advice, a chargeback), a
volume benchmark writes a page at a time: one ``BEGIN IMMEDIATE`` transaction per page, every
row ``INSERT OR IGNORE`` (keyed as the live books key it: RRN, (kind, RRN), chargeback id) and
the accounts' balances, holds and open-hold counts moved by the page's sums, in the same
transaction. A page is all or nothing, so a generator killed mid-way and run again only has to
know which pages it committed (``pages`` table). Rows carry no PAN: account ids and RRNs only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from issuer.books import Books
from payswitch.world.topology import AccountConfig

_PAGES = "CREATE TABLE IF NOT EXISTS import_pages (page INTEGER PRIMARY KEY)"


@dataclass
class BooksPage:
    """One page of an issuer's rows, as ``issuer.books`` would hold them after the day."""

    page: int
    # rrn, account_id, currency, amount, response_code, auth_code, state, posted, refunded
    auths: list[tuple[str, str, str, int, int, str, str, int, int]] = field(default_factory=list)
    # kind, rrn, original_rrn, amount, response_code
    advices: list[tuple[str, str, str, int, int]] = field(default_factory=list)
    # rrn, amount, mcc, reason (online captures above the hold: posted at clearing)
    deferred: list[tuple[str, int, str, str]] = field(default_factory=list)
    # chargeback_id, rrn, account_id, amount, currency, reason_code, raised_at, state
    chargebacks: list[tuple[str, str, str, int, str, str, float, str]] = field(default_factory=list)
    # a converted sale (``issuer.books_fx`` auth_fx): rrn, txn_currency, txn_amount, rate,
    # rate_table, txn_posted, txn_refunded
    fx: list[tuple[str, str, int, str, str, int, int]] = field(default_factory=list)
    # account id -> [balance change, held change, open holds change]
    accounts: dict[str, list[int]] = field(default_factory=dict)

    def move(self, account: str, balance: int = 0, held: int = 0, holds: int = 0) -> None:
        line = self.accounts.setdefault(account, [0, 0, 0])
        line[0] += balance
        line[1] += held
        line[2] += holds

    def __len__(self) -> int:
        return len(self.auths) + len(self.advices) + len(self.chargebacks)


class BooksImport:
    """An issuer's books file opened for bulk load (schema and accounts as the node makes
    them). Synchronous, not thread-safe: one call at a time."""

    def __init__(self, path: str | Path, accounts: Iterable[AccountConfig]) -> None:
        books = Books(path)  # the live schema, migrations included
        try:
            books.seed(accounts)
        finally:
            books.close()
        # one caller at a time, from whichever thread (the generator hands pages to a worker)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")  # as the live books: a hold's account exists
        self._db.execute(_PAGES)

    def done(self, page: int) -> bool:
        """Whether ``page`` was committed by an earlier run."""
        return (
            self._db.execute("SELECT 1 FROM import_pages WHERE page = ?", (page,)).fetchone()
            is not None
        )

    def write(self, page: BooksPage) -> bool:
        """Commit ``page`` unless it is committed already (False then: nothing moves twice)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if self.done(page.page):
                db.execute("ROLLBACK")
                return False
            db.executemany(
                "INSERT OR IGNORE INTO authorizations (rrn, account_id, currency, amount,"
                " response_code, auth_code, state, posted, refunded)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                page.auths,
            )
            db.executemany(
                "INSERT OR IGNORE INTO advices (kind, rrn, original_rrn, amount, response_code)"
                " VALUES (?, ?, ?, ?, ?)",
                page.advices,
            )
            db.executemany(
                "INSERT OR IGNORE INTO deferred_captures (rrn, amount, mcc, reason)"
                " VALUES (?, ?, ?, ?)",
                page.deferred,
            )
            db.executemany(
                "INSERT OR IGNORE INTO chargebacks (chargeback_id, rrn, account_id, amount,"
                " currency, reason_code, raised_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                page.chargebacks,
            )
            db.executemany(
                "INSERT OR IGNORE INTO auth_fx (rrn, txn_currency, txn_amount, rate, rate_table,"
                " txn_posted, txn_refunded) VALUES (?, ?, ?, ?, ?, ?, ?)",
                page.fx,
            )
            db.executemany(
                "UPDATE accounts SET balance = balance + ?, held = held + ?,"
                " open_holds = open_holds + ? WHERE id = ?",
                [(b, h, n, account) for account, (b, h, n) in sorted(page.accounts.items())],
            )
            db.execute("INSERT INTO import_pages (page) VALUES (?)", (page.page,))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return True

    def close(self) -> None:
        self._db.close()
