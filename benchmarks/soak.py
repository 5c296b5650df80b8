"""The soak (``make soak``): a long open loop at half the closed-loop peak, cut into windows,
with every process's resident memory read at the end of each window.

Why: a switch that holds its latency for ten seconds may still leak (a cache without a bound,
a task set that only grows) or slow down as its store grows. The soak holds when the p99 of its
last window is within ``P99_DRIFT_PCT`` of its first and every process's resident memory at the
end is within ``RSS_DRIFT_PCT`` of what it was after the first window (the first window absorbs
the start-up's growth: caches filling, the allocator's arenas).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

P99_DRIFT_PCT = 20.0
RSS_DRIFT_PCT = 5.0
RATE_SHARE = 0.5  # of the closed-loop peak


def rss_mib(pid: int) -> float | None:
    """Resident set of ``pid`` in MiB (VmRSS); None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        return None
    return None


def rss_all(pids: dict[str, int]) -> dict[str, float]:
    return {n: v for n, p in pids.items() if (v := rss_mib(p)) is not None}


def _drift(first: float | None, last: float | None) -> float | None:
    if first is None or last is None or first <= 0:
        return None
    return round(100.0 * (last - first) / first, 1)


def verdict(rate: float, windows: list[dict[str, Any]]) -> dict[str, Any]:
    """The soak's figures and whether it held (see the module doc)."""
    if not windows:
        return {"ran": False}
    first, last = windows[0], windows[-1]
    p99 = _drift(first["latency_ms"]["p99"], last["latency_ms"]["p99"])
    rss = {
        n: _drift(v, last["rss_mib"].get(n))
        for n, v in first["rss_mib"].items()
        if n != "generator"
    }
    errors = sum(w["error_count"] for w in windows)
    return {
        "ran": True,
        "rate_rps": rate,
        "windows": windows,
        "p99_first_ms": first["latency_ms"]["p99"],
        "p99_last_ms": last["latency_ms"]["p99"],
        "p99_drift_pct": p99,
        "rss_drift_pct": rss,
        "errors": errors,
        "holds": (
            p99 is not None
            and p99 <= P99_DRIFT_PCT
            and all(v is not None and v <= RSS_DRIFT_PCT for v in rss.values())
            and errors == 0
        ),
    }


def lines(s: dict[str, Any]) -> list[str]:
    if not s.get("ran"):
        return []
    out = [
        "",
        f"soak: {len(s['windows'])} windows at {s['rate_rps']:g}/s (open loop, half the peak): "
        f"p99 first {s['p99_first_ms']} ms, last {s['p99_last_ms']} ms ({s['p99_drift_pct']}%, "
        f"bar {P99_DRIFT_PCT:g}%); errors {s['errors']}; "
        f"{'HOLDS' if s['holds'] else 'DOES NOT HOLD'}",
        "  resident memory drift, first window to last (bar "
        f"{RSS_DRIFT_PCT:g}%): "
        + ", ".join(f"{n} {v}%" for n, v in sorted(s["rss_drift_pct"].items())),
    ]
    for i, w in enumerate(s["windows"]):
        out.append(
            f"  window {i + 1}: {w['throughput_rps']} rps p50 {w['latency_ms']['p50']} p99 "
            f"{w['latency_ms']['p99']} ms, errors {w['error_count']}, switch RSS "
            + ", ".join(f"{v} MiB" for n, v in w["rss_mib"].items() if n.startswith("switch"))
        )
    return out
