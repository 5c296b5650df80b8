"""The issuer's books post a stand-in advice once per RRN, straight to the balance, even
below zero; an advice it cannot post (unknown card, other currency, known RRN) posts nothing."""

from __future__ import annotations

from datetime import date

import pytest

from network.books import Books
from network.topology import AccountConfig, CardConfig
from payswitch.v1 import common_pb2 as c
from payswitch.v1 import network_pb2 as n

SMALL = CardConfig("4000000000000002", "2812", "A-SMALL")
BLOCKED = CardConfig("4000000000000119", "2812", "A-SMALL", status="blocked")


@pytest.fixture
def books(tmp_path):
    b = Books(tmp_path / "bank.db")
    b.seed((AccountConfig("A-SMALL", "EUR", 1_500),))
    yield b
    b.close()


def test_advice_posts_even_when_the_balance_goes_negative(books: Books) -> None:
    assert books.advise("r1", SMALL, 4_000, "EUR", "SW1234") == c.RESPONSE_CODE_APPROVED
    acct = books.account("A-SMALL")
    assert (acct.balance, acct.held, acct.open_holds) == (-2_500, 0, 0)
    hold = books.hold("r1")
    assert (hold.state, hold.amount, hold.posted) == (n.HOLD_STATE_POSTED, 4_000, 4_000)


def test_advice_is_idempotent_on_the_rrn(books: Books) -> None:
    books.advise("r1", SMALL, 1_000, "EUR", "SW1234")
    assert books.advise("r1", SMALL, 1_000, "EUR", "SW1234") == c.RESPONSE_CODE_APPROVED
    assert books.account("A-SMALL").balance == 500


def test_advice_skips_status_checks_the_switch_could_not_make(books: Books) -> None:
    assert books.advise("r1", BLOCKED, 100, "EUR", "SW1234") == c.RESPONSE_CODE_APPROVED


@pytest.mark.parametrize(
    ("card", "currency", "code"),
    [
        (None, "EUR", c.RESPONSE_CODE_INVALID_CARD_NUMBER),
        (SMALL, "USD", c.RESPONSE_CODE_INVALID_TRANSACTION),
    ],
)
def test_advice_that_cannot_be_posted_changes_nothing(books: Books, card, currency, code) -> None:
    assert books.advise("r1", card, 100, currency, "SW1234") == code
    assert books.account("A-SMALL").balance == 1_500
    assert books.hold("r1") is None


def test_advice_for_an_rrn_the_issuer_authorized_is_refused(books: Books) -> None:
    books.authorize("r1", SMALL, 100, "EUR", "", date(2026, 6, 1))
    assert books.advise("r1", SMALL, 100, "EUR", "SW1234") == c.RESPONSE_CODE_INVALID_TRANSACTION
    assert books.account("A-SMALL").balance == 1_500
