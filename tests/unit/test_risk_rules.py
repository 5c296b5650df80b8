"""The shipped rule set (topology/risk/rules-v1.toml): each rule and limit on the signals that
should trip it, the order (block lists, limits, allow lists, scores), the thresholds, and
rule files that must be refused whole."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest

from switch.risk.facts import Facts
from switch.risk.rules import RulesError, environment, load, parse
from switch.risk.signals import template

RULES = Path(__file__).resolve().parents[2] / "topology" / "risk" / "rules-v1.toml"
F = Facts(
    card_token="a" * 64,
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
    now=0.0,
    small=False,
)


def quiet() -> dict:
    """A returning card at a known terminal at noon: nothing should hold."""
    s = copy.deepcopy(template())
    s["card"].update(new_terminal=False, new_merchant=False)
    s["terminal"].update(addr_new=False, seen_before=True)
    s["amount"] = 1000
    return s


def verdict(changes: dict, facts: Facts = F):
    s = quiet()
    for key, value in changes.items():
        if "." in key:
            group, name = key.split(".")
            s[group][name] = value
        else:
            s[key] = value
    return load(RULES).evaluate(facts, environment(s))


def test_a_quiet_request_is_approved_with_no_reason():
    v = verdict({})
    assert (v.action, v.code, v.score, v.reasons) == ("approve", "", 0, ())


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"small": True, "card.small_1h": 2}, "card_testing"),
        ({"small": True, "terminal.small_10m": 2}, "terminal_card_testing"),
        ({"card.other_country_s": 1800}, "impossible_travel"),
        ({"card.count_10m": 5}, "card_velocity"),
        ({"card.count_1h": 1, "card.new_merchant": True, "card.amount_1h": 49000}, "spree"),
        ({"card.declines_1h": 3}, "repeated_declines"),
        ({"card.badpin_24h": 2}, "wrong_pins"),
        ({"card.count_24h": 1, "card.amount_pct": 500}, "amount_spike"),
        ({"card.declines_1h": 1, "card.amount_pct": 200}, "after_decline"),
        ({"terminal.cards_1h": 40}, "many_cards"),
        ({"terminal.addr_new": True}, "new_address"),
        ({"mcc": "7995"}, "risky_mcc"),
        ({"hour": 3, "amount": 60000}, "night_large"),
        ({"card.new_merchant": True, "amount": 250000}, "new_merchant_large"),
    ],
)
def test_each_rule_holds_on_its_pattern(changes, rule):
    v = verdict(changes)
    assert rule in v.reasons


def test_a_rule_does_not_hold_just_below_its_pattern():
    assert verdict({"small": True, "card.small_1h": 1, "terminal.small_10m": 1}).reasons == ()
    spree = {"card.count_1h": 1, "card.new_merchant": True, "card.amount_1h": 48999}
    assert verdict(spree).reasons == ()
    assert verdict({"card.declines_1h": 1, "card.amount_pct": 200, "has_pin": True}).reasons == ()
    assert verdict({"card.other_country_s": 7200}).reasons == ()
    assert verdict({"card.other_country_s": -1}).reasons == ()  # never elsewhere
    assert verdict({"card.count_10m": 4}).reasons == ()


def test_thresholds_decide_decline_review_and_step_up():
    assert (
        verdict({"card.other_country_s": 60}).action,
        verdict({"card.other_country_s": 60}).code,
    ) == (
        "decline",
        "59",
    )
    review = verdict({"card.declines_1h": 3, "terminal.addr_new": True})
    assert (review.action, review.code, review.score) == ("review", "", 70)
    step = verdict({"card.count_10m": 5})
    assert (step.action, step.code, step.pin_required) == ("step_up", "65", True)
    with_pin = verdict({"card.count_10m": 5}, dataclasses.replace(F, has_pin=True))
    assert (with_pin.action, with_pin.code, with_pin.pin_required) == ("step_up", "", False)


def test_scores_add_up_and_the_highest_rule_is_the_reason():
    v = verdict({"card.count_10m": 5, "mcc": "7995", "terminal.addr_new": True})
    assert v.score == 80 and v.action == "decline"
    assert v.reasons[0] == "card_velocity" and set(v.reasons) == {
        "card_velocity",
        "risky_mcc",
        "new_address",
    }
    assert v.message == "unusual card activity"


def test_hard_limits_decline_61_and_65_first():
    assert verdict({"amount": 5000001}).code == "61"
    v = verdict({"card.count_10m": 8, "card.other_country_s": 10})
    assert (v.action, v.code, v.reasons) == ("limit", "65", ("card_frequency",))


def _with_lists(**lists):
    doc = {"version": "t1", "thresholds": {"decline": 10}, "lists": lists}
    doc["limits"] = [{"id": "cap", "when": "amount > 100", "code": "61"}]
    doc["rules"] = [{"id": "always", "when": "true", "score": 50}]
    return parse(doc)


def test_block_lists_decline_59_before_anything_else():
    env = environment(quiet())
    for lists in (
        {"block_cards": ["a" * 64]},
        {"block_bins": ["4111"]},
        {"block_terminals": ["T-0001"]},
        {"block_merchants": ["M-GROCER"]},
    ):
        v = _with_lists(**lists).evaluate(F, env)
        assert (v.code, v.reasons) == ("59", ("block_list",)), lists
    assert _with_lists(block_bins=["5"]).evaluate(F, env).reasons == ("cap",)


def test_allow_lists_skip_the_scores_but_not_the_limits():
    env = environment(quiet())
    allowed = _with_lists(allow_cards=["a" * 64])
    assert allowed.evaluate(dataclasses.replace(F, amount=100), env).code == "61"  # env: 1000
    s = quiet()
    s["amount"] = 50
    v = allowed.evaluate(F, environment(s))
    assert (v.action, v.code, v.reasons) == ("approve", "", ("allow_list",))
    assert _with_lists().evaluate(F, environment(s)).code == "59"  # unlisted: scored


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"version": "x", "rules": [{"id": "r", "when": "card.nosuch > 1", "score": 1}]}, "rule r"),
        ({"version": "x", "rules": [{"id": "r", "when": "amount > 'a'", "score": 1}]}, "rule r"),
        ({"version": "x", "rules": [{"id": "r", "when": "amount +", "score": 1}]}, "rule r"),
        ({"version": "x", "rules": [{"id": "r", "when": "amount", "score": 1}]}, "true or false"),
        ({"version": "x", "rules": [{"id": "r", "when": "true", "score": 0}]}, "score"),
        ({"version": "x", "rules": [{"id": "r", "when": "true", "score": 1, "x": 1}]}, "unknown"),
        ({"version": "x", "limits": [{"id": "l", "when": "true", "code": "59"}]}, "code"),
        ({"version": "x", "lists": {"block_bins": ["4x"]}}, "block_bins"),
        ({"version": "x", "thresholds": {"decline": -1}}, "decline"),
        ({"rules": []}, "version"),
        ({"version": "x", "extra": 1}, "unknown"),
    ],
)
def test_a_bad_rule_file_is_refused_whole(doc, words):
    with pytest.raises(RulesError) as err:
        parse(doc)
    assert words in str(err.value)


def test_a_missing_or_malformed_file_is_refused(tmp_path):
    with pytest.raises(RulesError):
        load(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("version = ")
    with pytest.raises(RulesError):
        load(bad)
