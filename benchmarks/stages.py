"""The switch's own time per pipeline stage in one phase, and its store statements per
authorization, from its ``/metrics`` histogram
(``payswitch_stage_seconds{stage}``): the buckets scraped before and after the phase, their
difference, and percentiles read off it. A percentile is the upper bound of the bucket it
falls in (the histogram's resolution: 0.5, 1, 2, 2.5, 5, 10 ms ...), so "p99 1.0" means "p99 at
most 1 ms"."""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Iterable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Buckets = dict[str, dict[float, float]]  # stage -> upper bound (s) -> cumulative count
Statements = dict[str, float]  # "<backend> <kind>" -> statements sent so far


def scrape(address: str, timeout: float = 5.0) -> tuple[Buckets, Statements]:
    """The stage histograms and ``payswitch_store_statements_total`` of one switch now."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=timeout) as resp:
        text = resp.read().decode()
    out: Buckets = {}
    sent: Statements = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "payswitch_stage_seconds_bucket":
                le = math.inf if s.labels["le"] == "+Inf" else float(s.labels["le"])
                out.setdefault(s.labels["stage"], {})[le] = s.value
            elif s.name == "payswitch_store_statements_total":
                sent[f"{s.labels['backend']} {s.labels['kind']}"] = s.value
    return out, sent


def merged(each: Iterable[Buckets]) -> Buckets:
    """Several switches' histograms as one (bucket counts added)."""
    out: Buckets = {}
    for buckets in each:
        for stage, counts in buckets.items():
            mine = out.setdefault(stage, {})
            for le, n in counts.items():
                mine[le] = mine.get(le, 0.0) + n
    return out


def per_request(before: list[Statements], after: list[Statements], n: int) -> dict[str, float]:
    """Statements of each kind per answered request, summed over every switch process."""
    if n <= 0:
        return {}
    total: dict[str, float] = {}
    for was, now in zip(before, after, strict=True):
        for kind, v in now.items():
            total[kind] = total.get(kind, 0.0) + v - was.get(kind, 0.0)
    return {k: round(v / n, 2) for k, v in sorted(total.items())}


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
