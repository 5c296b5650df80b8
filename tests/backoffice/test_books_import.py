"""The issuers' books bulk load (``issuer.books_import``): a page is written once, all or
nothing, and reads back through the live books' own queries."""

from __future__ import annotations

import sqlite3

import pytest

from issuer.books import APPROVED, Books
from issuer.books_import import BooksImport, BooksPage
from payswitch.v1 import network_pb2
from payswitch.world.topology import AccountConfig

ACCOUNTS = (AccountConfig("A-1", "EUR", 100_000), AccountConfig("A-2", "USD", 50_000))


def _page(no: int) -> BooksPage:
    page = BooksPage(no)
    page.auths.append(("R1", "A-1", "EUR", 1_000, APPROVED, "AB12CD", "POSTED", 900, 300))
    page.advices.append(("capture", "R1", "R1", 900, APPROVED))
    page.advices.append(("refund", "R2", "R1", 300, APPROVED))
    page.auths.append(("R3", "A-2", "USD", 700, APPROVED, "EF34GH", "HELD", 0, 0))
    page.move("A-1", balance=-900 + 300)
    page.move("A-2", held=700, holds=1)
    return page


def test_a_page_is_written_once_and_reads_as_the_live_books(tmp_path):
    path = tmp_path / "bank-x.db"
    books = BooksImport(path, ACCOUNTS)
    try:
        assert books.write(_page(0)) is True
        assert books.write(_page(0)) is False  # a rerun after a crash: nothing moves twice
        assert books.done(0) and not books.done(1)
    finally:
        books.close()
    live = Books(path)
    try:
        a1, a2 = live.account("A-1"), live.account("A-2")
        assert a1 is not None and (a1.balance, a1.held, a1.open_holds) == (99_400, 0, 0)
        assert a2 is not None and (a2.balance, a2.held, a2.open_holds) == (50_000, 700, 1)
        hold = live.hold("R1")
        assert hold is not None and hold.state == network_pb2.HOLD_STATE_POSTED
        assert (hold.posted, hold.refunded) == (900, 300)
        held = live.hold("R3")
        assert held is not None and held.state == network_pb2.HOLD_STATE_HELD
    finally:
        live.close()


def test_a_failing_page_writes_nothing(tmp_path):
    books = BooksImport(tmp_path / "bank-y.db", ACCOUNTS)
    try:
        page = _page(3)
        page.auths.append(("R9", "A-404", "EUR", 5, APPROVED, "", "HELD", 0, 0))  # no account
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            books.write(page)
        assert not books.done(3)
        assert books.write(_page(3)) is True
    finally:
        books.close()
