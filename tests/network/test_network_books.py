"""The issuer's books: every decline code, holds, capture, reversal, refund, idempotency."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest

from issuer.books import Books
from payswitch.v1 import common_pb2 as c
from payswitch.v1 import network_pb2 as n
from payswitch.world.topology import AccountConfig, CardConfig

TODAY = date(2026, 6, 15)

ACCOUNTS = (
    AccountConfig("A-1", "EUR", 100_000),
    AccountConfig("A-SMALL", "EUR", 1_500),
    AccountConfig("A-CREDIT", "EUR", 0, credit_limit=50_000),
)
GOOD = CardConfig("4111111111111111", "2812", "A-1")
SMALL = CardConfig("4000000000000002", "2812", "A-SMALL")
CREDIT = CardConfig("5555555555554444", "2906", "A-CREDIT")
EXPIRED = CardConfig("4000000000000069", "2605", "A-1")  # May 2026, before June 2026
BLOCKED = CardConfig("4000000000000119", "2812", "A-1", status="blocked")
LOST = CardConfig("5105105105105100", "2812", "A-1", status="lost")
LIMITED = CardConfig("4242424242424242", "2812", "A-1", per_txn_limit=10_000)
ALL_CARDS = (GOOD, SMALL, CREDIT, EXPIRED, BLOCKED, LOST, LIMITED)


@pytest.fixture
def books_path(tmp_path: Path) -> Path:
    return tmp_path / "bank.db"


@pytest.fixture
def books(books_path: Path):
    b = Books(books_path)
    b.seed(ACCOUNTS)
    yield b
    b.close()


def auth(books: Books, rrn: str, card: CardConfig | None, amount: int, **kw):
    return books.authorize(
        rrn, card, amount, kw.get("currency", "EUR"), kw.get("expiry", ""), kw.get("today", TODAY)
    )


def held(books: Books, account: str = "A-1") -> int:
    acct = books.account(account)
    assert acct is not None
    return acct.held


def test_approval_places_a_hold_keyed_by_rrn(books: Books) -> None:
    d = auth(books, "r1", GOOD, 2_500)
    assert d.response_code == c.RESPONSE_CODE_APPROVED
    assert len(d.auth_code) == 6 and d.auth_code.isalnum() and d.auth_code.isupper()
    hold = books.hold("r1")
    assert hold is not None
    assert (hold.account_id, hold.state, hold.amount, hold.posted, hold.currency) == (
        "A-1",
        n.HOLD_STATE_HELD,
        2_500,
        0,
        "EUR",
    )
    acct = books.account("A-1")
    assert acct is not None
    assert (acct.balance, acct.held, acct.open_holds, acct.available) == (
        100_000,
        2_500,
        1,
        97_500,
    )


@pytest.mark.parametrize(
    ("card", "amount", "kw", "code"),
    [
        (None, 100, {}, c.RESPONSE_CODE_INVALID_CARD_NUMBER),
        (BLOCKED, 100, {}, c.RESPONSE_CODE_DO_NOT_HONOUR),
        (LOST, 100, {}, c.RESPONSE_CODE_DO_NOT_HONOUR),
        (EXPIRED, 100, {}, c.RESPONSE_CODE_EXPIRED_CARD),
        (GOOD, 100, {"expiry": "2601"}, c.RESPONSE_CODE_EXPIRED_CARD),  # presented expired
        (GOOD, 100, {"expiry": "13xx"}, c.RESPONSE_CODE_EXPIRED_CARD),  # not a date
        (LIMITED, 10_001, {}, c.RESPONSE_CODE_EXCEEDS_AMOUNT_LIMIT),
        (GOOD, 100, {"currency": "USD"}, c.RESPONSE_CODE_INVALID_TRANSACTION),
        (SMALL, 1_501, {}, c.RESPONSE_CODE_INSUFFICIENT_FUNDS),
        (CREDIT, 50_001, {}, c.RESPONSE_CODE_INSUFFICIENT_FUNDS),
        (GOOD, 0, {}, c.RESPONSE_CODE_INVALID_AMOUNT),
        (GOOD, -5, {}, c.RESPONSE_CODE_INVALID_AMOUNT),
    ],
)
def test_declines_place_no_hold(
    books: Books, card: CardConfig | None, amount: int, kw: dict, code: int
) -> None:
    d = auth(books, "r-decline", card, amount, **kw)
    assert d.response_code == code
    assert d.auth_code == ""
    assert books.hold("r-decline") is None
    assert all(books.account(a.id).held == 0 for a in ACCOUNTS)  # type: ignore[union-attr]


def test_edges_that_approve(books: Books) -> None:
    # current month is still valid; exactly the limit; exactly the available funds; credit line
    assert auth(books, "e1", GOOD, 100, expiry="2606").response_code == c.RESPONSE_CODE_APPROVED
    assert auth(books, "e2", LIMITED, 10_000).response_code == c.RESPONSE_CODE_APPROVED
    assert auth(books, "e3", SMALL, 1_500).response_code == c.RESPONSE_CODE_APPROVED
    assert auth(books, "e4", CREDIT, 50_000).response_code == c.RESPONSE_CODE_APPROVED
    assert books.account("A-CREDIT").available == 0  # type: ignore[union-attr]


def test_holds_reduce_what_is_available(books: Books) -> None:
    assert auth(books, "h1", SMALL, 1_000).response_code == c.RESPONSE_CODE_APPROVED
    assert auth(books, "h2", SMALL, 501).response_code == c.RESPONSE_CODE_INSUFFICIENT_FUNDS
    assert auth(books, "h3", SMALL, 500).response_code == c.RESPONSE_CODE_APPROVED
    assert held(books, "A-SMALL") == 1_500


def test_repeated_authorization_returns_the_first_answer_and_one_hold(books: Books) -> None:
    first = auth(books, "dup", GOOD, 3_000)
    again = auth(books, "dup", GOOD, 3_000)
    assert again == first
    assert held(books) == 3_000
    assert books.account("A-1").open_holds == 1  # type: ignore[union-attr]
    # even if the repeat differs (a broken client), the first answer stands
    assert auth(books, "dup", GOOD, 9_999) == first
    assert held(books) == 3_000


def test_repeated_decline_returns_the_same_decline(books: Books) -> None:
    first = auth(books, "dd", SMALL, 5_000)
    assert first.response_code == c.RESPONSE_CODE_INSUFFICIENT_FUNDS
    assert auth(books, "dd", SMALL, 5_000) == first


def test_full_capture_posts_and_closes_the_hold(books: Books) -> None:
    auth(books, "c1", GOOD, 4_000)
    assert books.capture("c1", 4_000, "EUR") == c.RESPONSE_CODE_APPROVED
    hold = books.hold("c1")
    assert hold is not None and (hold.state, hold.posted) == (n.HOLD_STATE_POSTED, 4_000)
    acct = books.account("A-1")
    assert acct is not None
    assert (acct.balance, acct.held, acct.open_holds) == (96_000, 0, 0)


def test_partial_capture_posts_part_and_releases_the_rest(books: Books) -> None:
    auth(books, "c2", GOOD, 4_000)
    assert books.capture("c2", 2_500, "EUR") == c.RESPONSE_CODE_APPROVED
    acct = books.account("A-1")
    assert acct is not None
    assert (acct.balance, acct.held, acct.available) == (97_500, 0, 97_500)
    assert books.hold("c2").posted == 2_500  # type: ignore[union-attr]


def test_capture_over_the_hold_is_refused_and_changes_nothing(books: Books) -> None:
    auth(books, "c3", GOOD, 4_000)
    assert books.capture("c3", 4_001, "EUR") == c.RESPONSE_CODE_INVALID_AMOUNT
    assert books.capture("c3", 4_001, "EUR") == c.RESPONSE_CODE_INVALID_AMOUNT
    assert books.hold("c3").state == n.HOLD_STATE_HELD  # type: ignore[union-attr]
    assert books.account("A-1").balance == 100_000  # type: ignore[union-attr]
    # a corrected capture still goes through
    assert books.capture("c3", 4_000, "EUR") == c.RESPONSE_CODE_APPROVED


def test_capture_refusals(books: Books) -> None:
    assert books.capture("nope", 100, "EUR") == c.RESPONSE_CODE_INVALID_TRANSACTION
    auth(books, "declined", SMALL, 99_999)
    assert books.capture("declined", 100, "EUR") == c.RESPONSE_CODE_INVALID_TRANSACTION
    auth(books, "cur", GOOD, 100)
    assert books.capture("cur", 100, "USD") == c.RESPONSE_CODE_INVALID_TRANSACTION
    assert books.capture("cur", 0, "EUR") == c.RESPONSE_CODE_INVALID_AMOUNT
    auth(books, "rev", GOOD, 100)
    books.reverse("rev")
    assert books.capture("rev", 100, "EUR") == c.RESPONSE_CODE_INVALID_TRANSACTION
    assert books.account("A-1").balance == 100_000  # type: ignore[union-attr]


def test_repeated_capture_changes_nothing(books: Books) -> None:
    auth(books, "c4", GOOD, 4_000)
    assert books.capture("c4", 3_000, "EUR") == c.RESPONSE_CODE_APPROVED
    before = books.account("A-1")
    assert books.capture("c4", 3_000, "EUR") == c.RESPONSE_CODE_APPROVED
    assert books.capture("c4", 1_000, "EUR") == c.RESPONSE_CODE_APPROVED
    assert books.account("A-1") == before
    assert books.hold("c4").posted == 3_000  # type: ignore[union-attr]


def test_reversal_releases_the_hold_once(books: Books) -> None:
    auth(books, "v1", GOOD, 7_000)
    assert books.reverse("v1") == c.RESPONSE_CODE_APPROVED
    hold = books.hold("v1")
    assert hold is not None and hold.state == n.HOLD_STATE_RELEASED
    assert held(books) == 0
    assert books.reverse("v1") == c.RESPONSE_CODE_APPROVED
    acct = books.account("A-1")
    assert acct is not None and (acct.balance, acct.held, acct.open_holds) == (100_000, 0, 0)


def test_reversal_of_a_captured_authorization_is_refused(books: Books) -> None:
    auth(books, "v2", GOOD, 7_000)
    books.capture("v2", 7_000, "EUR")
    assert books.reverse("v2") == c.RESPONSE_CODE_INVALID_TRANSACTION
    assert books.reverse("v2") == c.RESPONSE_CODE_INVALID_TRANSACTION
    assert books.account("A-1").balance == 93_000  # type: ignore[union-attr]


def test_reversal_of_a_declined_authorization_is_acknowledged(books: Books) -> None:
    auth(books, "v3", SMALL, 99_999)
    assert books.reverse("v3") == c.RESPONSE_CODE_APPROVED
    assert auth(books, "v3", SMALL, 99_999).response_code == c.RESPONSE_CODE_INSUFFICIENT_FUNDS


def test_reversal_before_authorization_blocks_the_late_authorization(books: Books) -> None:
    assert books.reverse("late") == c.RESPONSE_CODE_APPROVED
    assert books.reverse("late") == c.RESPONSE_CODE_APPROVED
    d = auth(books, "late", GOOD, 5_000)
    assert d.response_code == c.RESPONSE_CODE_INVALID_TRANSACTION
    assert books.hold("late") is None
    assert held(books) == 0
    # and the late authorization's answer is itself idempotent
    assert auth(books, "late", GOOD, 5_000) == d
    assert books.reverse("late") == c.RESPONSE_CODE_APPROVED
    assert held(books) == 0


def test_refunds_credit_up_to_what_was_posted(books: Books) -> None:
    auth(books, "p1", GOOD, 6_000)
    books.capture("p1", 5_000, "EUR")  # balance 95_000
    assert books.refund("f1", "p1", 2_000, "EUR") == c.RESPONSE_CODE_APPROVED
    assert books.refund("f2", "p1", 3_000, "EUR") == c.RESPONSE_CODE_APPROVED
    assert books.refund("f3", "p1", 1, "EUR") == c.RESPONSE_CODE_INVALID_AMOUNT
    assert books.account("A-1").balance == 100_000  # type: ignore[union-attr]
    assert books.hold("p1").refunded == 5_000  # type: ignore[union-attr]


def test_refund_over_the_posted_amount_is_refused(books: Books) -> None:
    auth(books, "p2", GOOD, 6_000)
    books.capture("p2", 5_000, "EUR")
    assert books.refund("f4", "p2", 5_001, "EUR") == c.RESPONSE_CODE_INVALID_AMOUNT
    assert books.refund("f4", "p2", 5_000, "EUR") == c.RESPONSE_CODE_APPROVED


def test_repeated_refund_changes_nothing(books: Books) -> None:
    auth(books, "p3", GOOD, 6_000)
    books.capture("p3", 6_000, "EUR")
    assert books.refund("f5", "p3", 1_000, "EUR") == c.RESPONSE_CODE_APPROVED
    before = books.account("A-1")
    assert books.refund("f5", "p3", 1_000, "EUR") == c.RESPONSE_CODE_APPROVED
    assert books.account("A-1") == before
    assert books.hold("p3").refunded == 1_000  # type: ignore[union-attr]


def test_a_reversed_refund_takes_its_credit_back_once(books: Books) -> None:
    """The switch reverses a refund whose answer it never got (by the refund's own RRN): the
    credit is taken back, the sale can be refunded again, a repeat changes nothing (campaign
    seed 3026: the reversal had been acknowledged and the credit kept)."""
    auth(books, "p5", GOOD, 6_000)
    books.capture("p5", 6_000, "EUR")  # balance 94_000
    assert books.refund("f9", "p5", 2_500, "EUR") == c.RESPONSE_CODE_APPROVED
    assert books.account("A-1").balance == 96_500  # type: ignore[union-attr]
    assert books.reverse("f9") == c.RESPONSE_CODE_APPROVED
    assert books.account("A-1").balance == 94_000  # type: ignore[union-attr]
    assert books.hold("p5").refunded == 0  # type: ignore[union-attr]
    assert books.reverse("f9") == c.RESPONSE_CODE_APPROVED  # a repeat: nothing moves
    assert books.account("A-1").balance == 94_000  # type: ignore[union-attr]
    assert books.refund("f10", "p5", 6_000, "EUR") == c.RESPONSE_CODE_APPROVED  # all of it again


def test_a_refund_after_its_reversal_credits_nothing(books: Books) -> None:
    auth(books, "p6", GOOD, 6_000)
    books.capture("p6", 6_000, "EUR")
    assert books.reverse("f11") == c.RESPONSE_CODE_APPROVED  # the reversal overtook it
    assert books.refund("f11", "p6", 1_000, "EUR") == c.RESPONSE_CODE_INVALID_TRANSACTION
    assert books.account("A-1").balance == 94_000  # type: ignore[union-attr]


def test_refund_refusals(books: Books) -> None:
    assert books.refund("f6", "unknown", 100, "EUR") == c.RESPONSE_CODE_INVALID_TRANSACTION
    auth(books, "p4", GOOD, 6_000)
    assert books.refund("f7", "p4", 100, "EUR") == c.RESPONSE_CODE_INVALID_TRANSACTION  # held
    books.capture("p4", 6_000, "EUR")
    assert books.refund("f8", "p4", 100, "USD") == c.RESPONSE_CODE_INVALID_TRANSACTION
    assert books.refund("f8", "p4", 0, "EUR") == c.RESPONSE_CODE_INVALID_AMOUNT


def test_books_survive_reopen_and_seeding_never_overwrites(books_path: Path) -> None:
    b = Books(books_path)
    assert b.seed(ACCOUNTS) == 3
    auth(b, "k1", GOOD, 1_000)
    b.capture("k1", 1_000, "EUR")
    auth(b, "k2", GOOD, 2_000)
    b.close()
    b = Books(books_path)
    assert b.seed((*ACCOUNTS, AccountConfig("A-NEW", "USD", 7))) == 1
    acct = b.account("A-1")
    assert acct is not None and (acct.balance, acct.held, acct.open_holds) == (99_000, 2_000, 1)
    assert b.account("A-NEW").balance == 7  # type: ignore[union-attr]
    assert auth(b, "k2", GOOD, 2_000).response_code == c.RESPONSE_CODE_APPROVED
    assert b.account("A-1").held == 2_000  # type: ignore[union-attr]
    b.close()


def test_the_books_never_contain_a_pan_or_expiry_column(books: Books, books_path: Path) -> None:
    for i, card in enumerate(ALL_CARDS):
        auth(books, f"s{i}", card, 100, expiry=card.expiry)
    books.reverse("s0")
    books.close()
    db = sqlite3.connect(books_path)
    dump = "\n".join(db.iterdump())
    db.close()
    for card in ALL_CARDS:
        assert card.pan not in dump
        assert card.pan[:6] + card.pan[-4:] not in dump
    assert "expiry" not in dump.lower() and "pan" not in dump.lower().split()
    raw = b"".join(p.read_bytes() for p in books_path.parent.iterdir())
    assert not any(card.pan.encode() in raw for card in ALL_CARDS)
