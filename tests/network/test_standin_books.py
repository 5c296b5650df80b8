"""The issuer's books hold a stand-in advice once per RRN (a hold, even when the available
amount goes below zero), post the stand-in sale's presentment against that hold exactly once,
release it on an advice reversal; an advice it cannot hold (unknown card, other currency, known
RRN, reversed first) changes nothing."""

from __future__ import annotations

import time
from datetime import date

import pytest

from issuer import books_settlement as clearing
from issuer.books import Books
from payswitch.v1 import common_pb2 as c
from payswitch.v1 import network_pb2 as n
from payswitch.world.topology import AccountConfig, CardConfig

SMALL = CardConfig("4000000000000002", "2812", "A-SMALL")
BLOCKED = CardConfig("4000000000000119", "2812", "A-SMALL", status="blocked")


@pytest.fixture
def books(tmp_path):
    b = Books(tmp_path / "bank.db")
    b.seed((AccountConfig("A-SMALL", "EUR", 1_500),))
    yield b
    b.close()


def test_advice_holds_even_when_open_to_buy_goes_negative(books: Books) -> None:
    assert books.advise("r1", SMALL, 4_000, "EUR", "SW1234") == c.RESPONSE_CODE_APPROVED
    acct = books.account("A-SMALL")
    assert (acct.balance, acct.held, acct.open_holds) == (1_500, 4_000, 1)
    assert acct.available == -2_500  # the risk stand-in accepted
    hold = books.hold("r1")
    assert (hold.state, hold.amount, hold.posted) == (n.HOLD_STATE_HELD, 4_000, 0)


def test_advice_is_idempotent_on_the_rrn(books: Books) -> None:
    books.advise("r1", SMALL, 1_000, "EUR", "SW1234")
    assert books.advise("r1", SMALL, 1_000, "EUR", "SW1234") == c.RESPONSE_CODE_APPROVED
    acct = books.account("A-SMALL")
    assert (acct.balance, acct.held, acct.open_holds) == (1_500, 1_000, 1)


def _presentment(rrn: str, amount: int) -> clearing.PresentmentIn:
    return clearing.PresentmentIn("CAPTURE", "tx-1", rrn, "", "5411", amount, "EUR")


def test_the_presentment_posts_against_the_advice_hold_once(books: Books) -> None:
    books.advise("r1", SMALL, 4_000, "EUR", "SW1234")
    (out,) = books.present_all("f1", [_presentment("r1", 3_000)], now=time.time())
    assert (out.status, out.posted, out.flags) == ("POSTED", 3_000, ())
    acct = books.account("A-SMALL")
    assert (acct.balance, acct.held, acct.open_holds) == (-1_500, 0, 0)  # rest released
    # The same presentment again (a re-run, another file) and a late advice repeat: no move.
    (again,) = books.present_all("f2", [_presentment("r1", 3_000)], now=time.time())
    assert (again.status, again.posted) == ("POSTED", 3_000)
    assert books.advise("r1", SMALL, 4_000, "EUR", "SW1234") == c.RESPONSE_CODE_APPROVED
    acct = books.account("A-SMALL")
    assert (acct.balance, acct.held, acct.open_holds) == (-1_500, 0, 0)
    hold = books.hold("r1")
    assert (hold.state, hold.posted) == (n.HOLD_STATE_POSTED, 3_000)


def test_an_advice_reversal_releases_the_hold_and_nothing_is_presented(books: Books) -> None:
    books.advise("r1", SMALL, 4_000, "EUR", "SW1234")
    assert books.reverse("r1") == c.RESPONSE_CODE_APPROVED
    acct = books.account("A-SMALL")
    assert (acct.balance, acct.held, acct.open_holds) == (1_500, 0, 0)
    (out,) = books.present_all("f1", [_presentment("r1", 4_000)], now=time.time())
    assert (out.status, out.flags) == ("REJECTED", ("REVERSED",))
    assert books.account("A-SMALL").balance == 1_500


def test_an_advice_after_its_reversal_holds_nothing(books: Books) -> None:
    assert books.reverse("r1") == c.RESPONSE_CODE_APPROVED  # the void overtook the advice
    assert books.advise("r1", SMALL, 4_000, "EUR", "SW1234") == c.RESPONSE_CODE_INVALID_TRANSACTION
    acct = books.account("A-SMALL")
    assert (acct.balance, acct.held) == (1_500, 0)


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
    acct = books.account("A-SMALL")
    assert (acct.balance, acct.held) == (1_500, 0)
    assert books.hold("r1") is None


def test_advice_for_an_rrn_the_issuer_authorized_is_refused(books: Books) -> None:
    books.authorize("r1", SMALL, 100, "EUR", "", date(2026, 6, 1))
    assert books.advise("r1", SMALL, 100, "EUR", "SW1234") == c.RESPONSE_CODE_INVALID_TRANSACTION
    assert books.account("A-SMALL").balance == 1_500
