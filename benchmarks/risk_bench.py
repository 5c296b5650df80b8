"""The risk stage's own cost per request, bounded: the store observation (read the history,
add the request), the signals and the rules, on a throwaway SQLite store.

  .venv/bin/python -m benchmarks.risk_bench [--requests 3000] [--cards 300] [--sync full]

Sequential requests over ``--cards`` cards at 20 terminals (so the windows hold history), with
the shipped rules (``topology/risk/rules-v1.toml``). Reports p50/p99/max in ms of:

- ``assess``: ``RiskEngine.assess`` whole (what the "risk" stage waits for, before the
  decision's own store write);
- ``observe``: the store call alone (one SQLite transaction: reads and upserts);
- ``signals_rules``: signals from the history and every rule (CEL), no store;
- ``keep``: writing the decision (``put_risk_decision``: one more commit).

Results go to ``benchmarks/results/risk_bench-<time>.json``; a summary is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from payswitch.world.topology import RiskConfig
from switch.risk import rules as rulebook
from switch.risk.engine import RiskEngine
from switch.risk.facts import Facts, observation
from switch.risk.signals import build
from switch.store.sqlite.store import SqliteStore

RESULTS = Path(__file__).resolve().parent / "results"
RULES = Path(__file__).resolve().parents[1] / "topology" / "risk" / "rules-v1.toml"


def _pct(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=100)
    return {
        "p50_ms": round(q[49] * 1000, 3),
        "p99_ms": round(q[98] * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


def _facts(i: int, cards: int, now: float) -> Facts:
    return Facts(
        card_token=f"{i % cards:064x}",
        bin="400000",
        terminal_id=f"T-{i % 20:04d}",
        merchant_id=f"M-{i % 10:04d}",
        address=f"10.0.0.{i % 20}",
        amount=500 + (i * 37) % 9000,
        currency="EUR",
        mcc="5411",
        country="DE",
        entry_mode=1,
        has_pin=True,
        local_hour=12,
        now=now,
        small=False,
    )


async def run(requests: int, cards: int, sync: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "risk.db", synchronous=sync)
        await store.open()
        rules = rulebook.load(RULES)
        engine = RiskEngine(RiskConfig(enabled=True, slice_ms=10_000), store, rules)
        timings: dict[str, list[float]] = {
            "assess": [],
            "observe": [],
            "signals_rules": [],
            "keep": [],
        }
        start = time.time()
        clock = time.perf_counter
        try:
            for i in range(requests):
                now = start + i * 0.05  # 20 requests/s of simulated time: windows fill up
                f = _facts(i, cards, now)
                t0 = clock()
                decision = await engine.assess(f)
                timings["assess"].append(clock() - t0)
                t0 = clock()
                await engine.keep(f"{i:032x}", decision, f)
                timings["keep"].append(clock() - t0)
                g = _facts(i + requests, cards, now)
                t0 = clock()
                history = await store.risk_observe(observation(g), now)
                timings["observe"].append(clock() - t0)
                t0 = clock()
                rules.evaluate(g, rulebook.environment(build(g, history)))
                timings["signals_rules"].append(clock() - t0)
        finally:
            await engine.close()
            await store.close()
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
        "requests": requests,
        "cards": cards,
        "sqlite_synchronous": sync,
        "rules": rules.version,
        **{k: _pct(v) for k, v in timings.items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="risk stage micro-benchmark")
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--cards", type=int, default=300)
    p.add_argument("--sync", choices=("full", "normal"), default="full")
    args = p.parse_args(argv)
    result = asyncio.run(run(args.requests, args.cards, args.sync))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"risk_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for k in ("assess", "observe", "signals_rules", "keep"):
        r = result[k]
        print(f"{k:<14} p50 {r['p50_ms']:>7} ms  p99 {r['p99_ms']:>7} ms  max {r['max_ms']:>7} ms")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
