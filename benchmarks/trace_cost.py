"""What tracing costs per authorization: the same sequential authorizations against a small stack
with tracing off, sampled 100 % and sampled 10 % (``[tracing] sample_ratio``).

Why sequential, one terminal, no simulated latency: the difference sought is a fraction of a
millisecond of CPU per authorization; one request at a time on a quiet stack keeps queueing out
of it. Per mode it records the client's latency (p50, p99, mean) and the CPU seconds of every
process of the stack (switch, acquirers, schemes, issuers: /proc, all threads, including the
span exporters' threads) divided by the authorizations, and the bytes of span files written.
Bounded: ``--auths`` per mode (after ``--warmup``), three stacks, about a minute in all.

    .venv/bin/python -m benchmarks.trace_cost [--auths 400] [--warmup 40]

Prints a summary and saves benchmarks/results/trace_cost.json (and trace_cost.txt).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.procstat import process_cpu_s
from benchmarks.world import (
    bench_topology,
    fleet_terminals,
    make_keys,
    make_token,
    secure_elements,
    store_for,
)
from payswitch import tracing
from payswitch.world.ports import with_free_ports, write_topology
from stack.launcher import Stack
from terminals.sdk import Terminal

RESULTS = Path(__file__).resolve().parent / "results"
MODES: dict[str, dict[str, Any]] = {
    "off": {"enabled": False},
    "sampled 100%": {"enabled": True, "sample_ratio": 1.0},
    "sampled 10%": {"enabled": True, "sample_ratio": 0.1},
}
PAN, EXPIRY = "4111111111111111", "2812"


def _stack_cpu(stack: Stack) -> float:
    return sum(process_cpu_s(stack.pid(n) or 0) or 0.0 for n in stack.node_ids)


async def _run_mode(
    name: str, cfg: dict[str, Any], root: Path, auths: int, warmup: int
) -> dict[str, Any]:
    run_dir = root / name.replace(" ", "-").replace("%", "")
    run_dir.mkdir()
    doc = with_free_ports(bench_topology(1, latency=False))
    doc["tracing"] = cfg
    path = run_dir / "topology.toml"
    write_topology(doc, path)
    make_keys(path)
    stack = Stack(path, run_dir, store=store_for(run_dir, "full"), ready_timeout=60.0)
    await asyncio.to_thread(stack.start)
    [(terminal_id, merchant)] = fleet_terminals(doc)
    se = await asyncio.to_thread(secure_elements, [terminal_id])
    tp = (
        tracing.provider("terminal", run_dir / "traces", cfg["sample_ratio"])
        if cfg["enabled"]
        else None
    )
    sw = stack.topology.switch.id
    try:
        async with Terminal(
            stack.address(sw),
            terminal_id,
            merchant,
            secure_element=se[terminal_id],
            tracer_provider=tp,
        ) as t:
            for _ in range(warmup):
                await t.pay(1250, "EUR", PAN, EXPIRY)
            cpu0, sw0, own0 = (
                _stack_cpu(stack),
                process_cpu_s(stack.pid(sw) or 0),
                time.process_time(),
            )
            lat = []
            approved = 0
            t0 = time.perf_counter()
            for _ in range(auths):
                s = time.perf_counter()
                r = await t.pay(1250, "EUR", PAN, EXPIRY)
                lat.append((time.perf_counter() - s) * 1000)
                approved += r.approved
            wall = time.perf_counter() - t0
            cpu1, sw1, own1 = (
                _stack_cpu(stack),
                process_cpu_s(stack.pid(sw) or 0),
                time.process_time(),
            )
    finally:
        if tp is not None:
            tp.shutdown()
        await asyncio.to_thread(stack.stop)
    span_bytes = (
        sum(f.stat().st_size for f in (run_dir / "traces").glob("*.jsonl*"))
        if cfg["enabled"]
        else 0
    )
    lat.sort()
    return {
        "mode": name,
        "auths": auths,
        "approved": approved,
        "throughput_per_s": round(auths / wall, 1),
        "latency_ms": {
            "p50": round(statistics.median(lat), 3),
            "p99": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3),
            "mean": round(statistics.fmean(lat), 3),
        },
        "cpu_ms_per_auth": {
            "switch": round(((sw1 or 0) - (sw0 or 0)) * 1000 / auths, 3),
            "stack": round((cpu1 - cpu0) * 1000 / auths, 3),
            "terminal": round((own1 - own0) * 1000 / auths, 3),
        },
        "span_bytes_per_auth": round(span_bytes / (auths + warmup)),
    }


def summary(report: dict[str, Any]) -> str:
    lines = [
        f"trace_cost {report['when']} on {report['machine']}",
        f"{'mode':<14}{'p50 ms':>9}{'p99 ms':>9}{'switch CPU':>12}{'stack CPU':>11}"
        f"{'terminal':>10}{'span B':>8}",
    ]
    for m in report["modes"]:
        c = m["cpu_ms_per_auth"]
        lines.append(
            f"{m['mode']:<14}{m['latency_ms']['p50']:>9.2f}{m['latency_ms']['p99']:>9.2f}"
            f"{c['switch']:>10.3f}ms{c['stack']:>9.3f}ms{c['terminal']:>8.3f}ms"
            f"{m['span_bytes_per_auth']:>8}"
        )
    base = report["modes"][0]
    for m in report["modes"][1:]:
        d_sw = m["cpu_ms_per_auth"]["switch"] - base["cpu_ms_per_auth"]["switch"]
        d_all = m["cpu_ms_per_auth"]["stack"] - base["cpu_ms_per_auth"]["stack"]
        d_p50 = m["latency_ms"]["p50"] - base["latency_ms"]["p50"]
        lines.append(
            f"{m['mode']} vs off: switch CPU {d_sw:+.3f} ms/auth "
            f"({100 * d_sw / base['cpu_ms_per_auth']['switch']:+.1f} %), stack CPU "
            f"{d_all:+.3f} ms/auth, p50 {d_p50:+.2f} ms"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="trace-cost-") as tmp:
        root = Path(tmp)
        make_token(root / "softhsm")
        modes = []
        for name, cfg in MODES.items():
            modes.append(await _run_mode(name, cfg, root, args.auths, args.warmup))
    return {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores {platform.machine()} {platform.system()}, "
        f"Python {platform.python_version()}",
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "auths_per_mode": args.auths,
        "modes": modes,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--auths", type=int, default=400)
    p.add_argument("--warmup", type=int, default=40)
    args = p.parse_args()
    report = asyncio.run(main_async(args))
    text = summary(report)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "trace_cost.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "trace_cost.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
