"""``payswitch-risk``: judge a rule set before it goes live.

``payswitch-risk backtest --rules FILE [--seed N] [--payments N]`` replays a seeded labelled
day of the simulated network (``payswitch.world.fraud``: honest payments with card testing,
stolen cards, cloned cards and account takeovers mixed in) through the rule set and prints
the confusion matrix, precision and recall (``switch.risk.backtest``). ``--json FILE`` also
writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from payswitch.world.fraud import day
from switch.risk.backtest import run
from switch.risk.rules import RulesError, load

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "topology" / "risk" / "rules-v1.toml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="payswitch-risk", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("backtest", help="replay a labelled day through a rule set")
    b.add_argument("--rules", type=Path, default=DEFAULT_RULES, help="rule file (TOML)")
    b.add_argument("--seed", type=int, default=14, help="the day's seed")
    b.add_argument("--payments", type=int, default=10_000, help="authorizations in the day")
    b.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.payments < 100:
        print("--payments must be at least 100", file=sys.stderr)
        return 2
    try:
        rules = load(args.rules)
    except RulesError as exc:
        print(f"rule file refused: {exc}", file=sys.stderr)
        return 2
    the_day = day(seed=args.seed, payments=args.payments)
    score = asyncio.run(run(the_day, rules))
    print(score.report(rules.version, len(the_day.payments)))
    if args.json is not None:
        figures = {
            "rules": rules.version,
            "seed": args.seed,
            "authorizations": len(the_day.payments),
            "matrix": {"tp": score.tp, "fp": score.fp, "fn": score.fn, "tn": score.tn},
            "precision": round(score.precision, 4),
            "recall": round(score.recall, 4),
            "recall_by_pattern": {k: score.caught[k] / v for k, v in score.labelled.items()},
            "decisions": dict(score.actions),
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
