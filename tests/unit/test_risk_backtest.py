"""Labelled traffic and the backtest: the generator is deterministic per seed and labels its
patterns; the confusion matrix adds up; the shipped rules reach the targets on a small seeded
day (the README's figures are of the full 10,000-payment day); the command refuses a bad
rule file and writes its figures as JSON."""

from __future__ import annotations

import json

from payswitch.world import fraud
from switch.cli import risk as cli
from switch.risk.backtest import Score, run
from switch.risk.rules import load


def test_the_day_is_seeded_labelled_and_in_time_order():
    one, two = fraud.day(seed=3, payments=1000), fraud.day(seed=3, payments=1000)
    assert one.payments == two.payments
    assert fraud.day(seed=4, payments=1000).payments != one.payments
    assert [p.at for p in one.payments] == sorted(p.at for p in one.payments)
    labels = {p.label for p in one.payments}
    assert labels <= {"", "card_testing", "stolen_card", "cloned_card", "account_takeover"}
    assert 0.02 <= one.fraud / len(one.payments) <= 0.06
    assert all(p.terminal in one.places for p in one.payments)


def test_patterns_have_their_shape():
    tries = fraud.card_testing("4111111111111111", "T-0001", 0.0, attempts=5)
    assert [p.label for p in tries] == ["card_testing"] * 5
    assert all(p.amount < 200 and not p.has_pin for p in tries)
    home, *clone = fraud.cloned_card("378282246310005", ("T-0001", "T-0003"), 0.0)
    assert home.label == "" and {p.terminal for p in clone} == {"T-0003"}
    assert all(p.at - home.at < 7200 for p in clone)  # faster than a plane


def test_the_confusion_matrix_adds_up():
    s = Score()
    for label, flagged in (("x", True), ("x", False), ("", True), ("", False), ("", False)):
        s.add(label, flagged, "a")
    assert (s.tp, s.fn, s.fp, s.tn) == (1, 1, 1, 2)
    assert (s.precision, s.recall) == (0.5, 0.5)
    assert s.caught["x"] == 1 and s.labelled["x"] == 2


async def test_the_shipped_rules_reach_the_targets_on_a_seeded_day(tmp_path):
    score = await run(fraud.day(seed=3, payments=2000), load(cli.DEFAULT_RULES), tmp_path)
    assert score.recall >= 0.9 and score.precision >= 0.8, score.report("rules-v1", 2000)


def test_the_command_refuses_a_bad_rule_file_and_writes_json(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('version = "x"\n[[rules]]\nid = "r"\nwhen = "nosuch"\nscore = 1\n')
    assert cli.main(["backtest", "--rules", str(bad)]) == 2
    assert "rule r" in capsys.readouterr().err
    out = tmp_path / "figures.json"
    assert cli.main(["backtest", "--payments", "500", "--seed", "5", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    m = figures["matrix"]
    assert m["tp"] + m["fn"] + m["fp"] + m["tn"] == figures["authorizations"]
    assert "precision" in capsys.readouterr().out
