"""Stand-in rules, one at a time: disabled, negative list (token and BIN range), MCC blocked
and allow-list, currency without a floor, floor, the card's verification (a fake verifier
here: the HSM job is tested on real processes, tests/e2e/test_standin_verifies.py), cumulative
limit per card and window (on a real SQLite store), and the metrics of each decision."""

from __future__ import annotations

import pytest

from payswitch import codes
from payswitch.world.topology import BinRange, StandInConfig
from switch.core import metrics
from switch.domain.standin import CardVerdict, StandInCard
from switch.routing.standin import StandIn
from switch.store.sqlite.store import SqliteStore

PAN = "4111111111111111"
TOKEN = "c" * 64
CFG = StandInConfig(
    enabled=True,
    floor=(("EUR", 5000),),
    cumulative=(("EUR", 8000),),
    window_s=3600,
    blocked_mccs=("7995",),
    negative_tokens=("d" * 64,),
    negative_bins=(BinRange("555555", "555555"),),
)


CARD = StandInCard(ksn=bytes(12), pan=PAN, expiry="2812")


class Verifier:
    """Answers a fixed verdict and records what it was asked (a unit-test fake)."""

    def __init__(self, verdict: CardVerdict) -> None:
        self.verdict = verdict
        self.asked = 0

    async def __call__(self, card: StandInCard) -> CardVerdict:
        self.asked += 1
        return self.verdict


def make(cfg, store, clock, verdict: CardVerdict | None = None) -> StandIn:
    verifier = Verifier(verdict or CardVerdict(None, "verified", "bank-a"))
    return StandIn(cfg, store, clock, verifier=verifier)


class Clock:
    t = 7200.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def store(tmp_path):
    s = SqliteStore(tmp_path / "switch.db", synchronous="normal")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def clock():
    metrics.reset()
    return Clock()


async def decide(standin: StandIn, **kw):
    args = {
        "pan": PAN,
        "card_token": TOKEN,
        "mcc": "5411",
        "amount": 1000,
        "currency": "EUR",
        "card": CARD,
    }
    args.update(kw)
    return await standin.decide(**args)


def count(reason: str) -> float:
    return metrics.get().standin.labels(reason)._value.get()


async def test_approval_within_the_limits_has_the_switch_auth_code(store, clock):
    d = await decide(make(CFG, store, clock))
    assert d.approved and d.code == "00" and len(d.auth_code) == 6 and d.auth_code.isalnum()
    assert count("approved") == 1
    assert metrics.get().standin_amount.labels("EUR")._value.get() == 1000


async def test_disabled_declines_91(store, clock):
    d = await decide(make(StandInConfig(), store, clock))
    assert (d.code, d.reason) == (codes.ISSUER_UNAVAILABLE, "disabled")


@pytest.mark.parametrize(
    ("kw", "code", "reason"),
    [
        ({"card_token": "d" * 64}, codes.RESTRICTED_CARD, "negative_list"),
        ({"pan": "5555555555554444"}, codes.RESTRICTED_CARD, "negative_list"),
        ({"mcc": "7995"}, codes.TRANSACTION_NOT_PERMITTED, "mcc"),
        ({"currency": "USD"}, codes.ISSUER_UNAVAILABLE, "currency"),
        ({"amount": 5001}, codes.EXCEEDS_AMOUNT_LIMIT, "floor"),
    ],
)
async def test_each_rule_declines_with_its_code(store, clock, kw, code, reason):
    d = await decide(make(CFG, store, clock), **kw)
    assert (d.code, d.reason, d.auth_code) == (code, reason, "")
    assert count(reason) == 1 and count("approved") == 0


async def test_allow_list_of_mccs(store, clock):
    cfg = StandInConfig(enabled=True, floor=(("EUR", 5000),), allowed_mccs=("5411",))
    standin = make(cfg, store, clock)
    assert (await decide(standin, mcc="5411")).approved
    assert (await decide(standin, mcc="5541")).code == codes.TRANSACTION_NOT_PERMITTED


async def test_floor_is_inclusive(store, clock):
    assert (await decide(make(CFG, store, clock), amount=5000)).approved


async def test_cumulative_limit_per_card_and_window(store, clock):
    standin = make(CFG, store, clock)
    assert (await decide(standin, amount=5000)).approved
    assert (await decide(standin, amount=3000)).approved  # 8000: exactly the limit
    d = await decide(standin, amount=1)
    assert (d.code, d.reason) == (codes.EXCEEDS_AMOUNT_LIMIT, "cumulative")
    assert (await decide(standin, card_token="e" * 64, amount=1)).approved  # another card
    clock.t += 3600  # the next window
    assert (await decide(standin, amount=5000)).approved


async def test_without_a_cumulative_limit_the_floor_bounds_the_window(store, clock):
    cfg = StandInConfig(enabled=True, floor=(("EUR", 5000),))
    standin = make(cfg, store, clock)
    assert (await decide(standin, amount=5000)).approved
    assert (await decide(standin, amount=1)).reason == "cumulative"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (codes.INCORRECT_PIN, "pin"),
        (codes.DO_NOT_HONOUR, "cvv2"),
        (codes.DO_NOT_HONOUR, "arqc"),
        (codes.RESTRICTED_CARD, "blocked"),
        (codes.INVALID_CARD_NUMBER, "unknown_card"),
        (codes.ISSUER_UNAVAILABLE, "no_file"),
    ],
)
async def test_a_card_that_fails_verification_is_declined_and_counts_nothing(
    store, clock, code, reason
):
    standin = make(CFG, store, clock, CardVerdict(code, reason, "bank-a"))
    d = await decide(standin, amount=5000)
    assert (d.code, d.reason, d.auth_code) == (code, reason, "")
    assert count(reason) == 1 and count("approved") == 0
    # Nothing was reserved: a verified card still has the whole window.
    assert (await decide(make(CFG, store, clock), amount=5000)).approved
    assert (await decide(make(CFG, store, clock), amount=3000)).approved


async def test_rules_decline_before_the_hsm_is_asked(store, clock):
    standin = make(CFG, store, clock)
    assert (await decide(standin, amount=5001)).reason == "floor"
    assert standin._verify.asked == 0  # type: ignore[union-attr]


async def test_without_a_verifier_or_card_data_nothing_is_stood_in(store, clock):
    d = await decide(StandIn(CFG, store, clock))
    assert (d.code, d.reason) == (codes.ISSUER_UNAVAILABLE, "no_verifier")
    d = await decide(make(CFG, store, clock), card=None)
    assert (d.code, d.reason) == (codes.ISSUER_UNAVAILABLE, "no_verifier")
