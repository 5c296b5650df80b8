"""The switch's own time per pipeline stage in one phase, from its ``/metrics`` histogram
(``payswitch_stage_seconds{stage}``): the buckets scraped before and after the phase, their
difference, and percentiles read off it. A percentile is the upper bound of the bucket it
falls in (the histogram's resolution: 0.5, 1, 2.5, 5, 10 ms ...), so "p99 1.0" means "p99 at
most 1 ms"."""

from __future__ import annotations

import math
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Buckets = dict[str, dict[float, float]]  # stage -> upper bound (s) -> cumulative count


def scrape(address: str, timeout: float = 5.0) -> Buckets:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=timeout) as resp:
        text = resp.read().decode()
    out: Buckets = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "payswitch_stage_seconds_bucket":
                le = math.inf if s.labels["le"] == "+Inf" else float(s.labels["le"])
                out.setdefault(s.labels["stage"], {})[le] = s.value
    return out


def percentiles(before: Buckets, after: Buckets, stage: str) -> dict[str, Any]:
    """n, p50 and p99 (ms, bucket upper bounds) of ``stage`` between two scrapes."""
    was, now = before.get(stage, {}), after.get(stage, {})
    cumulative = sorted((le, now[le] - was.get(le, 0.0)) for le in now)
    n = cumulative[-1][1] if cumulative else 0.0
    out: dict[str, Any] = {"n": int(n)}
    for name, q in (("p50_ms", 0.5), ("p99_ms", 0.99)):
        bound = next((le for le, c in cumulative if n and c >= q * n), None)
        out[name] = None if bound is None or math.isinf(bound) else round(bound * 1000, 3)
    return out
