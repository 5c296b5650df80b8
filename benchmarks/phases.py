"""One measured phase (a closed-loop level, an open-loop rate, the mix ...) and its summary.

Throughput counts completed RPCs (a decline is a completed RPC) over the span from the first
scheduled send to the last answer, so a saturated open-loop phase's drain lowers it, as it
should. A deadline miss is any request that got no answer within its deadline measured from
its scheduled time: DEADLINE_EXCEEDED, slower than the deadline, or never sent by the generator.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from benchmarks import cpu as cpu_cost
from benchmarks import stats
from benchmarks.loadgen import GENERATOR_STATUSES, Recorder

_MISSED = frozenset(("DEADLINE_EXCEEDED", *GENERATOR_STATUSES))


@dataclass
class Phase:
    name: str
    target: str  # payswitch | echo | chain4
    mode: str  # closed | open | warmup
    level: float  # concurrency (closed) or offered rate per second (open)
    workload: str  # approvals | mix
    origin: float  # perf_counter of the run's start: timelines share one clock
    rec: Recorder = field(default_factory=Recorder)
    cpu: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0
    ended: float = 0.0
    built_live: int = 0  # requests the feed had to build during the phase
    window_s: float = 0.0  # the send window (the phase's duration, without the drain)
    stage_ms: dict[str, Any] = field(default_factory=dict)  # the switch's own, per stage
    statements: dict[str, float] = field(default_factory=dict)  # store's, per request

    def latencies_ms(self) -> list[float]:
        """Latency from the scheduled send of every request that got an answer (OK or not)."""
        r = self.rec
        return [
            (e - s) * 1000
            for s, e, st in zip(r.sched, r.end, r.status, strict=True)
            if st not in GENERATOR_STATUSES
        ]

    def summary(self, deadline_s: float) -> dict[str, Any]:
        r = self.rec
        ok_lat: list[float] = []
        ok_ends: list[float] = []
        by_kind: dict[str, list[float]] = {}
        statuses: Counter[str] = Counter()
        codes: Counter[str] = Counter()
        misses = 0
        deadline_ms = deadline_s * 1000
        for s, e, st, kind, code in zip(r.sched, r.end, r.status, r.kind, r.code, strict=True):
            lat = (e - s) * 1000
            statuses[st] += 1
            if st == "OK":
                ok_lat.append(lat)
                ok_ends.append(e - self.origin)
                codes[code] += 1
                by_kind.setdefault(kind, []).append(lat)
            if st in _MISSED or (st == "OK" and lat > deadline_ms):
                misses += 1
        span = (max(r.end) - min(r.sched)) if len(r) else 0.0
        ok = statuses.get("OK", 0)
        lag = sorted((snd - s) * 1000 for s, snd in zip(r.sched, r.send, strict=True))
        out: dict[str, Any] = {
            "name": self.name,
            "target": self.target,
            "mode": self.mode,
            "workload": self.workload,
            "concurrency" if self.mode not in ("open", "soak") else "offered_rps": self.level,
            "requests": len(r),
            "completed_ok": ok,
            "span_s": round(span, 3),
            "throughput_rps": round(ok / span, 1) if span > 0 else 0.0,
            "latency_ms": stats.summary(ok_lat),
            "errors": {k: v for k, v in sorted(statuses.items()) if k != "OK"},
            "error_count": len(r) - ok,
            "deadline_misses": misses,
            "response_codes": dict(sorted(codes.items())),
            "send_lag_ms": stats.summary(lag),
            "built_during_phase": self.built_live,
            "cpu": self.cpu,
            "cpu_ms_per_request": cpu_cost.per_auth_ms(self.cpu, cpu_cost.answered(r.status)),
            "start_s": round(self.started - self.origin, 3),
            "end_s": round(self.ended - self.origin, 3),
        }
        if self.stage_ms:
            out["stage_ms"] = self.stage_ms
        if self.statements:
            out["store_statements_per_request"] = self.statements
        if self.workload == "mix":
            out["latency_ms_by_kind"] = {k: stats.summary(v) for k, v in sorted(by_kind.items())}
        return out

    def series(self) -> dict[str, Any]:
        """Per-second timeline and CDF points, for the plots and the JSON."""
        r = self.rec
        ends = [e - self.origin for e, st in zip(r.end, r.status, strict=True) if st == "OK"]
        lats = [
            (e - s) * 1000 for s, e, st in zip(r.sched, r.end, r.status, strict=True) if st == "OK"
        ]
        return {
            "per_second": stats.per_second(
                ends, lats, self.started - self.origin, self.window_s or None
            ),
            "cdf": stats.cdf_points(lats),
        }


def meets_target(summary: dict[str, Any], p99_ms: float) -> bool:
    """The sweep's bar: p99 under the target, no deadline miss, no error at all."""
    p99 = summary["latency_ms"]["p99"]
    return (
        p99 is not None
        and p99 < p99_ms
        and summary["deadline_misses"] == 0
        and summary["error_count"] == 0
    )


def saturated(summary: dict[str, Any], deadline_s: float) -> bool:
    """Past saturation: the rate is not kept up (achieved < 90 % of offered), more than 1 % of
    requests miss their deadline, or p99 is past half the deadline."""
    offered = summary.get("offered_rps") or 0.0
    p99 = summary["latency_ms"]["p99"]
    return (
        summary["throughput_rps"] < 0.9 * offered
        or summary["deadline_misses"] > 0.01 * max(summary["requests"], 1)
        or p99 is None
        or p99 > deadline_s * 1000 / 2
    )
