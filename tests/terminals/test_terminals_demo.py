"""The demo shift: the plan it derives from the default topology, and its runner against the
fake service (the real run needs the whole stack: ``make run`` then ``make demo``)."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

from termkit import FakeCards

from payswitch.world.topology import load
from terminals import demo
from terminals.demo_plan import build_plan

TOPOLOGY = Path(__file__).resolve().parents[2] / "topology" / "default.toml"
TODAY = dt.date(2026, 11, 21)


def test_plan_covers_every_scheme_and_every_decline_of_the_default_topology():
    plan = build_plan(load(TOPOLOGY), today=TODAY)
    assert (plan.terminal_id, plan.merchant_id, plan.switch) == (
        "T-0001",
        "M-GROCER",
        "127.0.0.1:50051",
    )
    assert [c.label.removeprefix("approve ") for c in plan.approvals] == [
        "visa",
        "mastercard",
        "amex",
        "discover",
        "jcb",
        "unionpay",
    ]
    assert all(c.expect == "00" for c in plan.approvals)
    declines = {c.pan: c.expect for c in plan.declines}
    assert declines["4000000000000002"] == "51"
    assert declines["4000000000000069"] == "54"
    assert declines["4000000000000119"] == "05"
    assert declines["5105105105105100"] == "05"
    assert declines["4242424242424242"] == "61"
    assert sorted(c.expect for c in plan.declines) == ["05", "05", "14", "51", "54", "61"]
    unknown = next(c for c in plan.declines if c.expect == "14")
    on_file = {c.pan for i in load(TOPOLOGY).issuers for c in i.cards}
    assert unknown.pan not in on_file and unknown.expiry > "2611"
    assert next(c for c in plan.declines if c.expect == "51").amount.minor_units > 1500
    assert next(c for c in plan.declines if c.expect == "61").amount.minor_units > 10000
    jcb = next(c for c in plan.approvals if c.label == "approve jcb")
    assert jcb.amount.currency == "JPY"
    assert "4111111111111111" not in repr(plan)


async def _run(switch, tmp_path) -> tuple[int, str]:
    out = io.StringIO()
    argv = ["--topology", str(TOPOLOGY), "--switch", switch.address, "--state-dir", str(tmp_path)]
    return await demo.run(argv, out=out, cards=FakeCards({})), out.getvalue()


def _teach(switch) -> None:
    """Make the fake answer each card as the topology's issuer would."""
    topology = load(TOPOLOGY)
    for case in build_plan(topology).declines:
        switch.fake.declines[case.pan] = case.expect
    for issuer in topology.issuers:
        switch.fake.pins.update((c.pan, c.pin) for c in issuer.cards if c.pin is not None)


async def test_demo_passes_when_every_answer_is_as_expected(switch, tmp_path):
    _teach(switch)
    code, out = await _run(switch, tmp_path)
    assert code == 0, out
    assert not re.search(r"\bFAIL\b", out) and "47/47 steps as expected" in out
    assert "offline sync" in out  # the offline step: skipped against this fake (no trust)
    for step in ("partial capture", "refund of captured sale", "void", "same request resent"):
        assert step in out
    for step in ("PIN approval", "wrong PIN", "wrong CVV2", "chip sale, ARPC", "altered after MAC"):
        assert step in out
    assert "00 same" in out and "FAILED_PRECONDITION" in out
    assert "00 ARPC ok" in out and "UNAUTHENTICATED" in out
    plan = build_plan(load(TOPOLOGY))
    for case in (*plan.approvals, *plan.declines):
        assert case.pan not in out
    assert plan.pin_card is not None and plan.pin_card.pin not in out
    # The shift ends with a batch close in balance and the settlement summary, each currency
    # with its own exponent (EUR 2, JPY 0, KWD 3).
    tail = out.split("steps as expected", 1)[1]
    assert "BATCH 2 CLOSED  IN BALANCE" in tail
    assert "settlement at cut-off" in tail
    assert tail.rstrip().endswith(demo.RECON_HINT)  # the operator's next step, last
    assert re.search(r"JPY\s+gross\s+20\s+fees\s+1\s+net\s+19 JPY", tail)
    assert re.search(r"KWD\s+gross\s+20\.000\s+fees\s+0\.135\s+net\s+19\.865 KWD", tail)
    assert re.search(r"EUR\s+gross\s+20\.00\s+fees\s+\d+\.\d\d\s+net", tail)
    closes = switch.fake.requests["CloseBatch"]
    assert len(closes) == 2 and len(closes[1].terminal_totals) == 4
    # One prepared request was sent twice, unchanged.
    sent = [r.SerializeToString() for r in switch.fake.requests["Authorize"]]
    assert len(sent) - len(set(sent)) == 1


async def test_demo_fails_on_a_deviation(switch, tmp_path):
    _teach(switch)
    switch.fake.declines["4242424242424242"] = "00"  # the limit is not enforced
    code, out = await _run(switch, tmp_path)
    assert code == 1
    assert len(re.findall(r"\bFAIL\b", out)) == 1 and "1 FAILED" in out
