"""Replay a labelled day through a rule set and score it against the labels.

Each payment goes through the same engine the switch runs (the store observation, the
signals, the rules), on a real SQLite store of its own, with the day's clock: a payment at
09:13 is observed at 09:13 of the replayed day. When the rules let a payment through, its
issuer's answer is counted as the switch counts it (declines, wrong PINs). A payment is
*flagged* when risk declined it, stepped it up without a PIN, or sent it to review.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from payswitch.world.fraud import Day, Payment
from payswitch.world.topology import RiskConfig
from switch.risk.engine import Decision, RiskEngine
from switch.risk.facts import Facts
from switch.risk.rules import RuleSet
from switch.store.sqlite.store import SqliteStore

DAY_START = 1_767_571_200.0  # 2026-01-05 00:00 UTC: any fixed day would do
SMALL_EUR = 200


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    caught: Counter[str] = field(default_factory=Counter)
    labelled: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    def add(self, label: str, flagged: bool, action: str) -> None:
        self.actions[action] += 1
        if label:
            self.labelled[label] += 1
            self.caught[label] += flagged
        if label and flagged:
            self.tp += 1
        elif label:
            self.fn += 1
        elif flagged:
            self.fp += 1
        else:
            self.tn += 1

    def report(self, version: str, payments: int) -> str:
        lines = [
            f"rule set {version}: {payments} authorizations, {self.tp + self.fn} labelled fraud",
            "",
            "                 flagged   passed",
            f"  fraud     {self.tp:>12} {self.fn:>8}",
            f"  honest    {self.fp:>12} {self.tn:>8}",
            "",
            f"precision {self.precision:.3f}  recall {self.recall:.3f}",
            "",
            "recall by pattern:",
        ]
        for label in sorted(self.labelled):
            n, hit = self.labelled[label], self.caught[label]
            lines.append(f"  {label:<18} {hit:>5} / {n:<5} {hit / n:.3f}")
        lines.append("decisions: " + ", ".join(f"{a} {n}" for a, n in sorted(self.actions.items())))
        return "\n".join(lines)


def flagged(d: Decision) -> bool:
    return bool(d.code) or d.action == "review"


def _facts(p: Payment, day: Day) -> Facts:
    place = day.places[p.terminal]
    n = int(p.terminal.rsplit("-", 1)[-1]) if p.terminal[-1].isdigit() else 0
    return Facts(
        card_token=p.card,
        bin="400000",
        terminal_id=p.terminal,
        merchant_id=place.merchant,
        address=f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}",
        amount=p.amount,
        currency=p.currency,
        mcc=place.mcc,
        country=place.country,
        entry_mode=1,
        has_pin=p.has_pin,
        local_hour=int(p.at // 3600) % 24,
        now=DAY_START + p.at,
        small=p.amount <= SMALL_EUR,
    )


async def run(day: Day, rules: RuleSet, work_dir: Path | None = None) -> Score:
    """Replay ``day`` through ``rules``; the confusion matrix against its labels."""
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        store = SqliteStore(Path(tmp) / "backtest.db", synchronous="normal")
        await store.open()
        cfg = RiskConfig(enabled=True, slice_ms=10_000, small=(("EUR", SMALL_EUR),))
        engine = RiskEngine(cfg, store, rules)
        score = Score()
        try:
            for p in day.payments:
                f = _facts(p, day)
                decision = await engine.assess(f)
                score.add(p.label, flagged(decision), decision.action)
                engine.settle(f, decision.code or p.issuer_code)
                await engine.drain()  # the next payment sees this outcome, as in order
        finally:
            await engine.close()
            await store.close()
    return score
