"""ARQC replay at the issuer: the ATC window (``payswitch.atc``, pure) and the books applying it
in the authorization's own transaction (``issuer.books``): a replayed or rolled-back counter is
declined 59 with no hold, an accepted one is recorded whatever the answer, a repeat of the RRN
gets its first answer, and the history survives a reopening of the books."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from issuer.books import Books
from payswitch.atc import AtcRefused, AtcState, AtcUse, advance
from payswitch.v1 import common_pb2 as c
from payswitch.world.topology import AccountConfig, CardConfig

TODAY = date(2026, 6, 15)
CARD = CardConfig("4111111111111111", "2812", "A-1")
KEY = "d" * 64 + ":00"


def test_a_fresh_card_accepts_any_counter() -> None:
    assert advance(None, 7, 8) == AtcState(7, 0b1)


def test_a_higher_counter_moves_the_window_up() -> None:
    s = advance(AtcState(7, 0b1), 9, 8)
    assert s == AtcState(9, 0b101)  # 9 (bit 0) used, 8 not yet, 7 (bit 2) used
    assert advance(s, 8, 8) == AtcState(9, 0b111)  # out of order, inside the window: once


@pytest.mark.parametrize(
    ("state", "atc", "reason"),
    [
        (AtcState(9, 0b1), 9, "replayed"),  # the same cryptogram (or counter) again
        (AtcState(9, 0b101), 7, "replayed"),  # used already, inside the window
        (AtcState(40, 0b1), 1, "too_old"),  # a clone reset to 1
        (AtcState(40, 0b1), 31, "too_old"),  # one more than the window below the highest
    ],
)
def test_replays_and_rollbacks_are_refused(state: AtcState, atc: int, reason: str) -> None:
    with pytest.raises(AtcRefused) as err:
        advance(state, atc, 8)
    assert err.value.reason == reason


def test_the_last_counter_of_the_window_is_still_accepted_once() -> None:
    assert advance(AtcState(40, 0b1), 32, 8) == AtcState(40, 0b1_0000_0001)


def test_a_jump_past_the_window_clears_it() -> None:
    assert advance(AtcState(5, 0b11111), 100, 8) == AtcState(100, 0b1)
    assert advance(AtcState(5, 0b11), 7, 8) == AtcState(7, 0b1101)


@pytest.fixture
def books(tmp_path: Path):
    b = Books(tmp_path / "bank.db")
    b.seed((AccountConfig("A-1", "EUR", 100_000),))
    b.atc_window = 8
    yield b
    b.close()


def auth(books: Books, rrn: str, atc: int, **kw):
    return books.authorize(rrn, CARD, 1_000, "EUR", "", TODAY, atc=AtcUse(KEY, atc), **kw)


def test_a_replayed_counter_is_59_with_nothing_held(books: Books) -> None:
    assert auth(books, "r1", 5).response_code == c.RESPONSE_CODE_APPROVED
    held = books.account("A-1").held
    again = auth(books, "r2", 5, arpc=b"A" * 8)
    assert (again.response_code, again.arpc, again.atc_refused) == (
        c.RESPONSE_CODE_SUSPECTED_FRAUD,
        b"",
        "replayed",
    )
    assert books.account("A-1").held == held and books.hold("r2") is None
    # The RRN's repeat gets its first answer (no second judgement of the counter).
    assert auth(books, "r1", 5).response_code == c.RESPONSE_CODE_APPROVED
    assert auth(books, "r2", 6).response_code == c.RESPONSE_CODE_SUSPECTED_FRAUD


def test_a_rolled_back_counter_is_59(books: Books) -> None:
    assert auth(books, "r1", 40).response_code == c.RESPONSE_CODE_APPROVED
    d = auth(books, "r2", 1)
    assert (d.response_code, d.atc_refused) == (c.RESPONSE_CODE_SUSPECTED_FRAUD, "too_old")
    assert books.atc_state(KEY) == AtcState(40, 0b1)  # a refusal records nothing


def test_a_declined_cryptogram_is_used_all_the_same(books: Books) -> None:
    wrong_pin = auth(books, "r1", 3, verdict=c.RESPONSE_CODE_INCORRECT_PIN)
    assert wrong_pin.response_code == c.RESPONSE_CODE_INCORRECT_PIN
    assert auth(books, "r2", 3).response_code == c.RESPONSE_CODE_SUSPECTED_FRAUD


def test_the_history_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "bank.db"
    b = Books(path)
    b.seed((AccountConfig("A-1", "EUR", 100_000),))
    assert auth(b, "r1", 9).response_code == c.RESPONSE_CODE_APPROVED
    b.close()
    b = Books(path)
    try:
        assert auth(b, "r2", 9).response_code == c.RESPONSE_CODE_SUSPECTED_FRAUD
    finally:
        b.close()


def test_the_books_never_hold_the_pan(books: Books) -> None:
    auth(books, "r1", 1)
    rows = books._db.execute("SELECT card FROM card_atcs").fetchall()
    assert rows == [(KEY,)] and CARD.pan not in KEY
