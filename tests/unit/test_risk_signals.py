"""Each risk signal from a store history, and what a request writes (no PAN anywhere)."""

from __future__ import annotations

import dataclasses

from switch.domain.risk import HOUR, MINUTE, Bucket, History, Seen
from switch.risk.facts import Facts, observation, outcome_tallies
from switch.risk.signals import NEVER, build, template

NOW = 1_700_000_000.0
M = int(NOW) // MINUTE * MINUTE
H = int(NOW) // HOUR * HOUR
TOKEN = "a" * 64

F = Facts(
    card_token=TOKEN,
    bin="411111",
    terminal_id="T-0001",
    merchant_id="M-GROCER",
    address="10.1.2.3",
    amount=1000,
    currency="EUR",
    mcc="5411",
    country="DE",
    entry_mode=1,
    has_pin=False,
    local_hour=14,
    now=NOW,
    small=False,
)


def card_buckets(*buckets: Bucket) -> History:
    return History(buckets={"c:" + TOKEN: list(buckets)})


def test_velocity_windows_have_minute_resolution():
    h = card_buckets(
        Bucket(MINUTE, M, "n", 2),  # this minute
        Bucket(MINUTE, M - 9 * MINUTE, "n", 1),  # still inside ten minutes
        Bucket(MINUTE, M - 10 * MINUTE, "n", 4),  # outside ten, inside the hour
        Bucket(HOUR, H, "n", 7),
        Bucket(HOUR, H - 23 * HOUR, "n", 3),  # the day's first hour
        Bucket(HOUR, H - 24 * HOUR, "n", 100),  # a day ago: out
    )
    card = build(F, h)["card"]
    assert (card["count_10m"], card["count_1h"], card["count_24h"]) == (3, 7, 10)


def test_amounts_and_the_usual_range_are_per_currency():
    h = card_buckets(
        Bucket(HOUR, H, "n.EUR", 4),
        Bucket(HOUR, H, "amt.EUR", 800),  # four payments of 2.00 on average
        Bucket(HOUR, H, "amt.USD", 99999),
        Bucket(MINUTE, M, "amt.EUR", 300),
    )
    card = build(F, h)["card"]
    assert card["amount_24h"] == 800 and card["amount_1h"] == 300
    assert card["amount_pct"] == 500  # 10.00 is five times the usual 2.00
    assert build(F, History())["card"]["amount_pct"] == 0  # no history, no ratio


def test_card_testing_declines_and_wrong_pins():
    h = card_buckets(
        Bucket(MINUTE, M - 5 * MINUTE, "small", 3),
        Bucket(MINUTE, M, "decl", 2),
        Bucket(HOUR, H - HOUR, "badpin", 2),
    )
    s = build(dataclasses.replace(F, small=True), h)
    assert s["small"] is True
    assert (s["card"]["small_1h"], s["card"]["declines_1h"], s["card"]["badpin_24h"]) == (3, 2, 2)


def test_new_terminal_merchant_and_impossible_travel():
    seen = [
        Seen("terminal", "T-0002", NOW - 100),
        Seen("merchant", "M-GROCER", NOW - 100),
        Seen("country", "FR", NOW - 1800),
        Seen("country", "DE", NOW - 60),
    ]
    card = build(F, History(seen={"c:" + TOKEN: seen}))["card"]
    assert card["new_terminal"] is True and card["new_merchant"] is False
    assert card["other_country_s"] == 1800 and card["countries_24h"] == 2
    home = build(F, History(seen={"c:" + TOKEN: seen[3:]}))["card"]
    assert home["other_country_s"] == NEVER and home["countries_24h"] == 1


def test_terminal_cards_and_addresses():
    seen = [Seen("card", "b" * 64, NOW - 10), Seen("addr", "10.9.9.9", NOW - 10)]
    t = build(F, History(seen={"t:T-0001": seen}))["terminal"]
    assert t["cards_1h"] == 2  # another card and this one
    assert t["addr_new"] is True and t["seen_before"] is True
    first = build(F, History())["terminal"]
    assert first["addr_new"] is True and first["seen_before"] is False


def test_the_observation_counts_every_subject_and_holds_no_pan():
    obs = observation(dataclasses.replace(F, small=True))
    assert obs.subjects == ("c:" + TOKEN, "t:T-0001", "m:M-GROCER", "a:10.1.2.3")
    metrics = {(t.subject[0], t.metric, t.value) for t in obs.tallies}
    assert ("c", "amt.EUR", 1000) in metrics and ("a", "small", 1) in metrics
    kinds = {(s.subject[0], s.kind) for s in obs.sightings}
    assert kinds == {
        ("c", "terminal"),
        ("c", "merchant"),
        ("c", "country"),
        ("t", "card"),
        ("t", "addr"),
    }
    assert "4111111111111111" not in repr(obs)


def test_outcomes_count_declines_and_wrong_pins_only():
    assert outcome_tallies(F, "00") == ()
    assert {t.metric for t in outcome_tallies(F, "51")} == {"decl"}
    pins = outcome_tallies(F, "55")
    assert {(t.subject[0], t.metric) for t in pins if t.metric == "badpin"} == {
        ("c", "badpin"),
        ("t", "badpin"),
    }


def test_the_template_names_every_signal():
    t = template()
    assert set(t) >= {"amount", "currency", "small", "mcc", "country", "hour", "has_pin"}
    assert set(t["card"]) >= {"count_10m", "other_country_s", "new_merchant", "amount_pct"}
