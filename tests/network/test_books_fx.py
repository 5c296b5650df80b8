"""The issuer's books for converted sales (issuer.books_fx): held, captured, refunded and
presented in the account's currency, the transaction amounts kept beside, nothing committed
by a refused step."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from issuer.books import Books
from issuer.books_fx import Converted
from issuer.books_settlement import PresentmentIn
from payswitch import fx
from payswitch.v1 import common_pb2 as c
from payswitch.world.topology import AccountConfig, CardConfig

TODAY = date(2026, 6, 15)
RATE = Decimal("0.00206420")  # KWD per JPY
CARD = CardConfig("6200000000000104", "2903", "K-1")


@pytest.fixture
def books(tmp_path: Path):
    b = Books(tmp_path / "bank.db")
    b.seed((AccountConfig("K-1", "KWD", 900_000),))
    yield b
    b.close()


def _sale(books: Books, rrn: str, jpy: int) -> int:
    billed = fx.convert(jpy, "JPY", "KWD", RATE)
    d = books.authorize(
        rrn, CARD, jpy, "JPY", "", TODAY, conversion=Converted(billed, "KWD", RATE, "t1")
    )
    assert d.response_code == c.RESPONSE_CODE_APPROVED
    return billed


def test_hold_capture_and_refunds_in_the_account_currency(books: Books) -> None:
    billed = _sale(books, "r1", 10_000)  # 20.642 KWD
    assert books.account("K-1").held == billed == 20_642
    assert books.capture("r1", 6_001, "JPY") == c.RESPONSE_CODE_APPROVED
    posted = fx.convert(6_001, "JPY", "KWD", RATE)
    hold = books.hold("r1")
    assert (hold.posted, hold.currency) == (posted, "KWD")
    assert books.account("K-1").held == 0 and books.account("K-1").balance == 900_000 - posted
    # refunds after a rate change (0.0001 KWD per JPY), converted cumulatively at it: a first
    # refund too small to be worth a fils is approved and credits 0; the second makes up for
    # it, so together they credit exactly the whole at that rate
    day = Decimal("0.00010000")
    assert books.refund("f1", "r1", 1, "JPY", day, "t2") == c.RESPONSE_CODE_APPROVED
    assert books.applied_conversion("refund", "f1").billing_minor == 0
    assert books.refund("f2", "r1", 6_000, "JPY", day, "t2") == c.RESPONSE_CODE_APPROVED
    credited = fx.convert(6_001, "JPY", "KWD", day)  # 0.6001 -> 0.600 KWD
    assert books.account("K-1").balance == 900_000 - posted + credited
    # more than captured, in the transaction currency, is refused and changes nothing
    assert books.refund("f3", "r1", 1, "JPY") == c.RESPONSE_CODE_INVALID_AMOUNT
    assert books.applied_conversion("refund", "f3") is None
    assert books.sale_conversion("r1").txn_refunded == 6_001
    # the switch reverses the second refund (its answer never came): its credit and its share
    # of the sale's conversion are taken back, and that share can be refunded again
    assert books.reverse("f2") == c.RESPONSE_CODE_APPROVED
    assert books.account("K-1").balance == 900_000 - posted
    assert books.sale_conversion("r1").txn_refunded == 1
    assert books.applied_conversion("refund", "f2") is None
    assert books.refund("f4", "r1", 6_000, "JPY", day, "t2") == c.RESPONSE_CODE_APPROVED


def test_a_clearing_presentment_posts_the_billing_amount_once(books: Books) -> None:
    _sale(books, "r2", 1_000)
    p = PresentmentIn("CAPTURE", "tx2", "r2", "", "5411", 1_000, "JPY")
    (out,) = books.present_all("file-1", [p], 0.0)
    assert out.status == "POSTED" and out.posted == 2_064  # 2.0642 KWD, half-up
    assert out.extra["billing_minor"] == 2_064 and out.extra["posted_currency"] == "KWD"
    assert books.sale_conversion("r2").txn_posted == 1_000
    (again,) = books.present_all("file-2", [p], 0.0)
    assert again.posted == 2_064 or "ALREADY_POSTED" in again.flags
    assert books.account("K-1").balance == 900_000 - 2_064
