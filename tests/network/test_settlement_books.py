"""The issuer's clearing rules (issuer.books_settlement): presentments against holds, the
capture tolerance, late presentments, expired holds, refunds, idempotent re-presentment."""

from __future__ import annotations

import time
from datetime import date

import pytest

from issuer import books_settlement as clearing
from issuer.books import Books
from issuer.books_settlement import IssuerRules, PresentmentIn
from payswitch.v1 import common_pb2 as c
from payswitch.v1 import network_pb2 as n
from payswitch.world.settlement import SettlementConfig
from payswitch.world.topology import AccountConfig, CardConfig

TODAY = date(2026, 6, 15)
CARD = CardConfig("4111111111111111", "2812", "A-1")
DAY = 86_400.0


@pytest.fixture
def books(tmp_path):
    b = Books(tmp_path / "bank.db")
    b.seed((AccountConfig("A-1", "EUR", 100_000),))
    b.rules = IssuerRules(hold_ttl_s=DAY, settlement=SettlementConfig())
    yield b
    b.close()


def hold(books: Books, rrn: str, amount: int) -> None:
    assert (
        books.authorize(rrn, CARD, amount, "EUR", "", TODAY).response_code
        == c.RESPONSE_CODE_APPROVED
    )


def cap(rrn: str, amount: int, mcc: str = "5411") -> PresentmentIn:
    return PresentmentIn("CAPTURE", f"tx-{rrn}", rrn, "", mcc, amount, "EUR")


def acct(books: Books):
    return books.account("A-1")


def present(books: Books, p: PresentmentIn, now: float | None = None):
    (out,) = books.present_all("F1", [p], time.time() if now is None else now)
    return out


def test_capture_within_the_hold_posts_it_and_releases_the_rest(books):
    hold(books, "r1", 10_000)
    out = present(books, cap("r1", 6_000))
    assert (out.status, out.flags, out.posted) == ("POSTED", (), 6_000)
    a = acct(books)
    assert (a.balance, a.held, a.open_holds) == (94_000, 0, 0)
    assert books.hold("r1").state == n.HOLD_STATE_POSTED


def test_above_the_hold_within_tolerance_posts_the_full_amount(books):
    hold(books, "r2", 5_000)
    out = present(books, cap("r2", 6_000, mcc="5812"))  # exactly +20 %
    assert (out.status, out.flags, out.posted) == (
        "POSTED",
        ("ABOVE_HOLD_WITHIN_TOLERANCE",),
        6_000,
    )
    assert (acct(books).balance, acct(books).held) == (94_000, 0)


def test_above_tolerance_or_for_other_mccs_is_posted_but_flagged(books):
    hold(books, "r3", 5_000)
    hold(books, "r4", 5_000)
    assert present(books, cap("r3", 6_001, mcc="5812")).flags == ("OVER_TOLERANCE",)
    assert present(books, cap("r4", 5_001, mcc="5411")).flags == ("OVER_TOLERANCE",)
    assert acct(books).balance == 100_000 - 6_001 - 5_001


def test_after_the_ttl_a_presentment_is_force_posted_as_late(books):
    hold(books, "r5", 3_000)
    out = present(books, cap("r5", 3_000), now=time.time() + DAY + 1)
    assert (out.status, out.flags, out.posted) == ("POSTED", ("LATE_PRESENTMENT",), 3_000)
    assert (acct(books).balance, acct(books).held) == (97_000, 0)


def test_expired_holds_are_released_and_a_later_presentment_still_posts(books):
    hold(books, "r6", 2_000)
    hold(books, "r7", 1_000)
    assert books.expire_holds(time.time() + 60) == []  # not yet
    assert books.expire_holds(time.time() + DAY + 1) == ["r6", "r7"]
    assert (acct(books).held, acct(books).open_holds) == (0, 0)
    assert books.hold("r6").state == n.HOLD_STATE_RELEASED
    assert books.expire_holds(time.time() + DAY + 2) == []  # once
    out = present(books, cap("r6", 2_000), now=time.time() + DAY + 3)
    assert out.flags == ("LATE_PRESENTMENT",) and out.posted == 2_000
    assert (acct(books).balance, acct(books).held) == (98_000, 0)  # held not released twice


def test_online_capture_already_posted_is_confirmed_without_moving_money(books):
    hold(books, "r8", 4_000)
    assert books.capture("r8", 4_000, "EUR") == c.RESPONSE_CODE_APPROVED
    out = present(books, cap("r8", 4_000))
    assert (out.status, out.flags, out.posted) == ("POSTED", ("ALREADY_POSTED",), 0)
    assert acct(books).balance == 96_000


def test_online_capture_above_the_hold_is_deferred_to_clearing(books):
    hold(books, "r9", 5_000)
    assert books.capture("r9", 5_500, "EUR", mcc="5812") == c.RESPONSE_CODE_APPROVED
    assert books.hold("r9").state == n.HOLD_STATE_HELD and acct(books).balance == 100_000
    assert books.expire_holds(time.time() + DAY + 1) == []  # a deferred capture never expires
    assert books.capture("r9", 5_500, "EUR", mcc="5411") == c.RESPONSE_CODE_APPROVED  # repeat
    assert present(books, cap("r9", 5_500, mcc="5812")).posted == 5_500
    # Without a tolerance MCC the online capture above the hold is refused as before.
    hold(books, "r10", 5_000)
    assert books.capture("r10", 5_500, "EUR", mcc="5411") == c.RESPONSE_CODE_INVALID_AMOUNT


def test_online_capture_after_the_ttl_is_deferred_as_late(books):
    books.rules = IssuerRules(hold_ttl_s=1e-6)
    hold(books, "r11", 1_000)
    deadline = time.monotonic() + 5  # poll until the hold is past its TTL by the books' rule
    while not clearing._expired(books._db, "r11", books.rules, time.time()):
        assert time.monotonic() < deadline
    assert books.capture("r11", 1_000, "EUR") == c.RESPONSE_CODE_APPROVED
    assert acct(books).balance == 100_000
    assert present(books, cap("r11", 1_000)).flags == ("LATE_PRESENTMENT",)


def test_reversed_or_unknown_authorizations_are_rejected(books):
    hold(books, "r12", 1_000)
    books.reverse("r12")
    assert present(books, cap("r12", 1_000)).flags == ("REVERSED",)
    assert present(books, cap("nope", 1_000)).status == "REJECTED"
    assert acct(books).balance == 100_000


def test_refund_presentments_credit_once(books):
    hold(books, "r13", 5_000)
    books.capture("r13", 5_000, "EUR")
    online = books.refund("f1", "r13", 1_000, "EUR")
    assert online == c.RESPONSE_CODE_APPROVED
    ref = PresentmentIn("REFUND", "tx-f1", "f1", "r13", "5411", 1_000, "EUR")
    assert present(books, ref).flags == ("ALREADY_POSTED",)
    ref2 = PresentmentIn("REFUND", "tx-f2", "f2", "r13", "5411", 2_000, "EUR")
    assert present(books, ref2).posted == 2_000
    too_much = PresentmentIn("REFUND", "tx-f3", "f3", "r13", "5411", 2_001, "EUR")
    assert present(books, too_much).status == "REJECTED"
    assert acct(books).balance == 100_000 - 5_000 + 1_000 + 2_000


def test_a_presentment_sent_again_gets_its_first_result(books):
    hold(books, "r14", 1_000)
    first = present(books, cap("r14", 1_000))
    again = present(books, cap("r14", 1_000))
    assert (again.status, again.posted) == (first.status, first.posted)
    assert acct(books).balance == 99_000
