"""Overload and recovery (issue 19): twice the closed-loop peak for ``overload_s``, then, with
no pause, half the peak for ``recover_s``; p99 and errors per second over the whole span.

Why its own shape: the question is not how fast the switch is but whether it keeps serving
past saturation (answering the excess at once) and how soon after the overload it is back to
normal. So the two open loops run back to back on one schedule (the recovery's first request
is due the moment the overload's last is: the overload's stragglers still in flight are part
of what the recovery must absorb), their requests prebuilt before either starts, and every
request is counted in the second it was *offered* (its scheduled send time).

The verdict (``recovered``): from the recovery's fifth second on, every second has no error,
no deadline miss and p99 below the suite's target; ``recovered_after_s`` is the first second
of the recovery from which that holds to the end. A 91 is an answer, not an error, but it
leaves a reversal behind: they are counted per second too. The switch's admission gauges and
refusal counters (``/metrics``) are read before, at the end of the overload and at the end.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from benchmarks import loadgen, stats
from benchmarks.phases import Phase
from benchmarks.procstat import CpuWindow

FULL = (10.0, 15.0)  # seconds at 2x the peak, then at half of it
JUDGED_FROM_S = 4  # the recovery's fifth second (0-based)
GAUGES = (
    "payswitch_concurrency_limit",
    "payswitch_admission_queue",
    "payswitch_in_flight",
    "payswitch_shed_total",
    "payswitch_saf_depth",
)


@dataclass(frozen=True)
class Plan:
    overload_rps: float
    recover_rps: float
    overload_s: float
    recover_s: float


def plan(peak_rps: float, quick: bool, duration_s: float) -> Plan:
    """2x and 0.5x the peak; 10 s + 15 s, or in quick runs ``duration_s`` (at most 3 s) and
    2.5 times that (``make bench-quick``: 2 s + 5 s, just long enough to judge the fifth
    second; shorter smoke runs are reported "not judged")."""
    if quick:
        over = min(max(duration_s, 0.5), 3.0)
        spans = (over, 2.5 * over)
    else:
        spans = FULL
    return Plan(max(round(2 * peak_rps), 2), max(round(peak_rps / 2), 1), spans[0], spans[1])


def _scrape(address: str) -> dict[str, float]:
    """The admission gauges and counters, flat ("name{label=value}" -> value)."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith(GAUGES) and not s.name.endswith("_created"):
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


async def _gauges(addresses: list[str]) -> dict[str, float]:
    """Summed over every switch process (one unless the suite drives several)."""
    out: dict[str, float] = {}
    for address in addresses:
        try:
            one = await asyncio.to_thread(_scrape, address)
        except OSError:
            continue
        for k, v in one.items():
            out[k] = out.get(k, 0.0) + v
    return out


def switch_metrics(runner: object) -> list[str]:
    """The /metrics address of every switch the suite's runner drives: its
    ``metrics_addresses`` (several switch processes) or its ``metrics_address`` (one),
    whichever it has, so this phase reads both shapes of the suite."""
    many = getattr(runner, "metrics_addresses", None)
    if many is not None:
        return [a for a in many if a]
    one = getattr(runner, "metrics_address", "")
    return [one] if one else []


async def run(
    target: loadgen.Target,
    feed: loadgen.Feed,
    pids: dict[str, int],
    *,
    peak_rps: float,
    quick: bool,
    duration_s: float,
    deadline_s: float,
    p99_target_ms: float,
    max_requests: int,
    max_in_flight: int,
    origin: float,
    metrics_addresses: list[str] | None = None,
) -> tuple[list[Phase], dict[str, Any]]:
    """Both phases and the timeline; the phases also go to the report's phase list."""
    p = plan(peak_rps, quick, duration_s)
    addresses = metrics_addresses or []
    n_over = min(int(p.overload_rps * p.overload_s), max_requests)
    n_rec = min(int(p.recover_rps * p.recover_s), max_requests)
    feed.prepare(n_over + n_rec + 8)
    over = Phase(
        f"overload {p.overload_rps:g}/s", "payswitch", "open", p.overload_rps, "overload", origin
    )
    rec = Phase(
        f"recovery {p.recover_rps:g}/s", "payswitch", "open", p.recover_rps, "recovery", origin
    )
    over.window_s, rec.window_s = p.overload_s, p.recover_s
    before = await _gauges(addresses)
    kw: dict[str, Any] = {
        "deadline_s": deadline_s,
        "max_requests": max_requests,
        "max_in_flight": max_in_flight,
    }
    cpu, rec_cpu = CpuWindow(pids), CpuWindow(pids)
    cpu.start()
    start = time.perf_counter()
    over.started = start
    at_end_of_overload: dict[str, float] = {}

    async def overload() -> loadgen.Recorder:
        return await loadgen.open_loop(target, feed, p.overload_rps, p.overload_s, **kw)

    async def recovery() -> loadgen.Recorder:
        nonlocal at_end_of_overload
        await asyncio.sleep(max(start + p.overload_s - time.perf_counter(), 0.0))
        rec.started = time.perf_counter()
        over.ended = rec.started
        over.cpu = cpu.stop(over.ended - start)
        rec_cpu.start()
        scrape = asyncio.ensure_future(_gauges(addresses))
        result = await loadgen.open_loop(target, feed, p.recover_rps, p.recover_s, **kw)
        at_end_of_overload = await scrape
        return result

    over.rec, rec.rec = await asyncio.gather(overload(), recovery())
    rec.ended = time.perf_counter()
    rec.cpu = rec_cpu.stop(rec.ended - rec.started)
    after = await _gauges(addresses)
    timeline = _timeline(over, rec, start, p, deadline_s)
    verdict = _verdict(timeline, p, p99_target_ms)
    result = {
        "overload_rps": p.overload_rps,
        "recover_rps": p.recover_rps,
        "overload_s": p.overload_s,
        "recover_s": p.recover_s,
        "peak_rps": peak_rps,
        "overload": over.summary(deadline_s),
        "recovery": rec.summary(deadline_s),
        "per_second": timeline,
        **verdict,
        "switch_metrics": {"before": before, "end_of_overload": at_end_of_overload, "end": after},
        "refused_during_overload": {
            k.partition("reason=")[2].rstrip("}"): v - before.get(k, 0.0)
            for k, v in at_end_of_overload.items()
            if k.startswith("payswitch_shed_total")
        },
    }
    for phase in (over, rec):
        print(
            f"  {phase.name:<28} ok {len([s for s in phase.rec.status if s == 'OK'])}"
            f"  errors {phase.summary(deadline_s)['error_count']}",
            flush=True,
        )
    print(f"  recovered: {verdict['recovered']} (after {verdict['recovered_after_s']} s)")
    return [over, rec], result


def _timeline(
    over: Phase, rec: Phase, start: float, p: Plan, deadline_s: float
) -> list[dict[str, Any]]:
    """One row per second of offered time from the overload's start."""
    rows: dict[int, dict[str, Any]] = {}
    lats: dict[int, list[float]] = {}
    deadline_ms = deadline_s * 1000
    for phase in (over, rec):
        r = phase.rec
        for s, e, st, code in zip(r.sched, r.end, r.status, r.code, strict=True):
            sec = int(max(s - start, 0.0))
            row = rows.setdefault(
                sec,
                {"t": sec, "phase": phase.workload, "offered": 0, "ok": 0, "errors": 0,
                 "deadline_misses": 0, "code_91": 0, "by_status": {}},
            )  # fmt: skip
            row["offered"] += 1
            lat = (e - s) * 1000
            if st == "OK":
                row["ok"] += 1
                lats.setdefault(sec, []).append(lat)
                row["code_91"] += code == "91"
                row["deadline_misses"] += lat > deadline_ms
            else:
                row["errors"] += 1
                row["by_status"][st] = row["by_status"].get(st, 0) + 1
                row["deadline_misses"] += st in ("DEADLINE_EXCEEDED", *loadgen.GENERATOR_STATUSES)
    out = []
    for sec in sorted(rows):
        values = sorted(lats.get(sec, []))
        row = rows[sec]
        row["p50_ms"] = round(stats.percentile(values, 50), 3) if values else None
        row["p99_ms"] = round(stats.percentile(values, 99), 3) if values else None
        out.append(row)
    return out


def _verdict(timeline: list[dict[str, Any]], p: Plan, p99_ms: float) -> dict[str, Any]:
    first = int(p.overload_s)
    recovery = [r for r in timeline if r["t"] >= first and r["phase"] == "recovery"]

    def good(r: dict[str, Any]) -> bool:
        return (
            r["errors"] == 0
            and r["deadline_misses"] == 0
            and r["p99_ms"] is not None
            and r["p99_ms"] < p99_ms
        )

    after: int | None = None
    for i in range(len(recovery) - 1, -1, -1):
        if not good(recovery[i]):
            break
        after = recovery[i]["t"] - first
    judged = [r for r in recovery if r["t"] - first >= JUDGED_FROM_S]
    return {
        "criterion": f"from the recovery's second {JUDGED_FROM_S + 1} on: no error, no "
        f"deadline miss, p99 < {p99_ms:g} ms",
        "recovered": all(good(r) for r in judged) if judged else None,
        "recovered_after_s": after,
    }


def summary_lines(o: dict[str, Any]) -> list[str]:
    """The summary's section: the two phases, the verdict and the timeline."""
    if not o:
        return []
    verdict = {True: "yes", False: "NO", None: "not judged (recovery under 5 s)"}[o["recovered"]]
    lines = [
        "",
        f"overload and recovery: {o['overload_rps']:g}/s (2x the peak {o['peak_rps']:g}) for "
        f"{o['overload_s']:g} s, then {o['recover_rps']:g}/s for {o['recover_s']:g} s "
        "(per second of offered time):",
        "     t  phase     offered     ok  errors  misses   91s    p50 ms    p99 ms",
    ]
    for r in o["per_second"]:
        lines.append(
            f"  {r['t']:>4}  {r['phase']:<9} {r['offered']:>7} {r['ok']:>6} {r['errors']:>7} "
            f"{r['deadline_misses']:>7} {r['code_91']:>5} {_ms(r['p50_ms']):>9} "
            f"{_ms(r['p99_ms']):>9}"
        )
    lines.append(
        f"  recovered ({o['criterion']}): {verdict}; every second good from recovery second "
        f"{o['recovered_after_s']} on"
    )
    m = o["switch_metrics"].get("end_of_overload") or {}
    if m:
        lines.append(
            f"  switch at the end of the overload: limit {m.get('payswitch_concurrency_limit')}"
            f", in flight {m.get('payswitch_in_flight{kind=terminal}')}, queued "
            f"{m.get('payswitch_admission_queue')}, reversals waiting "
            f"{m.get('payswitch_saf_depth{kind=REVERSAL}')}; refused during the overload, by "
            f"reason: {o.get('refused_during_overload')}"
        )
    return lines


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"
