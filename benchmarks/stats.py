"""Latency percentiles and distributions, by nearest rank (no interpolation).

Why nearest rank: every figure reported is a latency some request really had; with fewer than
1000 samples p99.9 is simply the maximum, and ``n`` is reported beside it so nobody over-reads it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
)


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(math.ceil(pct / 100.0 * len(sorted_values)), 1)
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary(values_ms: Iterable[float]) -> dict[str, float | int | None]:
    """n, mean, p50, p90, p99, p99.9 and max (ms, 3 decimals); None for an empty set."""
    ordered = sorted(values_ms)
    out: dict[str, float | int | None] = {"n": len(ordered)}
    if not ordered:
        out.update({"mean": None, **{k: None for k, _ in PERCENTILES}, "max": None})
        return out
    out["mean"] = round(sum(ordered) / len(ordered), 3)
    for name, pct in PERCENTILES:
        out[name] = round(percentile(ordered, pct), 3)
    out["max"] = round(ordered[-1], 3)
    return out


def cdf_points(values_ms: Iterable[float], points: int = 200) -> list[tuple[float, float]]:
    """(latency ms, fraction at or below) at up to ``points`` ranks, denser in the tail."""
    ordered = sorted(values_ms)
    n = len(ordered)
    if n == 0:
        return []
    # Fractions 1 - 10^-k spread evenly in k, so p99 .. p99.99 get as many points as p0 .. p90.
    top = math.log10(n) if n > 1 else 1.0
    out: list[tuple[float, float]] = []
    seen: set[int] = set()
    for i in range(points + 1):
        frac = 1.0 - 10 ** (-top * i / points)
        rank = min(max(math.ceil(frac * n), 1), n)
        if rank not in seen:
            seen.add(rank)
            out.append((round(ordered[rank - 1], 3), round(rank / n, 6)))
    if n not in seen:  # the tail's last point is the maximum
        out.append((round(ordered[-1], 3), 1.0))
    return out


def per_second(
    ends_s: Sequence[float],
    latencies_ms: Sequence[float],
    start_s: float = 0.0,
    window_s: float | None = None,
) -> list[dict[str, float | int]]:
    """Completions per one-second bucket of end time counted from ``start_s``, with each
    bucket's p50/p99/max latency and ``rate`` (completions per second of the bucket's time
    inside the ``window_s`` send window, so a partial last bucket does not look like a dip)."""
    buckets: dict[int, list[float]] = {}
    for end, lat in zip(ends_s, latencies_ms, strict=True):
        buckets.setdefault(int(max(end - start_s, 0.0)), []).append(lat)
    out: list[dict[str, float | int]] = []
    for second in sorted(buckets):
        values = sorted(buckets[second])
        width = 1.0
        if window_s is not None and second < window_s < second + 1:
            width = max(window_s - second, 0.25)
        out.append(
            {
                "t": round(start_s + second, 3),
                "n": len(values),
                "rate": round(len(values) / width, 1),
                "p50": round(percentile(values, 50), 3),
                "p99": round(percentile(values, 99), 3),
                "max": round(values[-1], 3),
            }
        )
    return out
