"""PNG plots drawn from the report JSON alone, so any saved run can be redrawn:

    python -m benchmarks.plots benchmarks/results/<timestamp>/report.json

- ``latency_over_time.png``: per-second p50/p99 and completions of every payswitch phase;
- ``latency_cdf.png``: latency by percentile (HDR style: the tail gets the room) for the open
  loop rates, and for payswitch, ghz and both ceilings at the same concurrency;
- ``throughput_vs_load.png``: achieved vs offered rate with p99, and the peaks side by side.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

NINES = [0.0, 0.5, 0.9, 0.99, 0.999, 0.9999]
NINE_LABELS = ["p0", "p50", "p90", "p99", "p99.9", "p99.99"]


def _nines(frac: float) -> float:
    return -math.log10(max(1.0 - frac, 1e-6))


def _payswitch(rep: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in rep["phases"] if p["target"] == "payswitch"]


def latency_over_time(rep: dict[str, Any], path: Path) -> None:
    phases = _payswitch(rep)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(12, 7), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    for i, p in enumerate(phases):
        ps = p["series"]["per_second"]
        if not ps:
            continue
        t = [b["t"] + 0.5 for b in ps]
        top.plot(t, [b["p50"] for b in ps], color="tab:blue", lw=1, label="p50" if i == 0 else None)
        top.plot(
            t, [b["p99"] for b in ps], color="tab:red", lw=1.5, label="p99" if i == 0 else None
        )
        top.plot(
            t,
            [b["max"] for b in ps],
            color="tab:gray",
            lw=0.9,
            ls=":",
            label="max" if i == 0 else None,
        )
        bottom.plot(t, [b.get("rate", b["n"]) for b in ps], color="tab:green", lw=1.2)
        for ax in (top, bottom):
            ax.axvspan(p["start_s"], p["end_s"], color="0.92" if i % 2 else "0.84", lw=0)
        top.text(
            (p["start_s"] + p["end_s"]) / 2,
            1.0,
            p["name"].replace("closed ", ""),
            rotation=90,
            ha="center",
            va="bottom",
            fontsize=7,
            transform=top.get_xaxis_transform(),
        )
    target = rep["settings"]["p99_target_ms"]
    top.axhline(target, color="k", ls="--", lw=0.8, label=f"{target:g} ms")
    top.set_yscale("log")
    top.set_ylabel("latency (ms, log)")
    top.legend(loc="upper left", fontsize=8)
    top.set_title("payswitch latency over the run (per second; shaded = phases)", pad=48)
    bottom.set_ylabel("completed / s")
    bottom.set_xlabel("seconds since the run started")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cdf(ax: Any, points: list[list[float]], n: int | None, label: str, **kw: Any) -> None:
    """One latency-by-percentile line. The maximum (fraction 1.0) is drawn at rank n - 1/2, so
    a small sample's tail ends where its data ends instead of running to the right edge."""
    if not points or not n:
        return
    xs = [_nines(f if f < 1.0 else 1.0 - 0.5 / n) for _, f in points]
    ax.plot(xs, [ms for ms, _ in points], label=f"{label} (n={n:,})", **kw)


def latency_cdf(rep: dict[str, Any], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5))
    opens = sorted(
        (p for p in _payswitch(rep) if p["mode"] == "open" and p["workload"] == "approvals"),
        key=lambda p: p["offered_rps"],
    )
    cmap = plt.get_cmap("viridis")
    for i, p in enumerate(opens):
        _cdf(
            left,
            p["series"]["cdf"],
            p["latency_ms"]["n"],
            f"{p['offered_rps']:g}/s",
            color=cmap(i / max(len(opens) - 1, 1)),
        )
    left.set_title("payswitch, open loop: latency by percentile")
    ghz = rep.get("ghz", {})
    level = ghz.get("concurrency") or rep["settings"]["ghz_concurrency"]
    by_name = {p["name"]: p for p in rep["phases"]}
    for name, label, color in (
        (f"closed c={level}", f"payswitch c={level}", "tab:red"),
        (f"chain4 c={level}", f"bare 4-hop chain c={level}", "tab:orange"),
        (f"echo c={level}", f"bare echo c={level}", "tab:green"),
    ):
        if name in by_name:
            phase = by_name[name]
            _cdf(right, phase["series"]["cdf"], phase["latency_ms"]["n"], label, color=color)
    if ghz.get("ran") and ghz.get("cdf"):
        n = ghz["latency_ms"]["n"]
        _cdf(right, ghz["cdf"], n, f"ghz -> payswitch c={level}", color="tab:purple", ls="--")
    right.set_title(f"closed loop c={level}: payswitch, ghz and the ceilings")
    target = rep["settings"]["p99_target_ms"]
    for ax in (left, right):
        ax.set_yscale("log")
        ax.set_xticks([_nines(f) for f in NINES], NINE_LABELS)
        ax.set_xlim(0, _nines(NINES[-1]))
        ax.axhline(target, color="k", ls="--", lw=0.8)
        ax.set_ylabel("latency (ms, log)")
        ax.set_xlabel("percentile")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def throughput_vs_load(rep: dict[str, Any], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [3, 2]})
    opens = sorted(
        (p for p in _payswitch(rep) if p["mode"] == "open" and p["workload"] == "approvals"),
        key=lambda p: p["offered_rps"],
    )
    x = [p["offered_rps"] for p in opens]
    left.plot(x, [p["throughput_rps"] for p in opens], "o-", color="tab:blue", label="achieved")
    if x:
        left.plot([0, max(x)], [0, max(x)], ls=":", color="0.5", label="offered = achieved")
    left.set_xlabel("offered load (requests / s)")
    left.set_ylabel("achieved (completed / s)")
    p99_ax = left.twinx()
    p99_ax.plot(
        x,
        [p["latency_ms"]["p99"] or math.nan for p in opens],
        "s--",
        color="tab:red",
        label="p99 latency",
    )
    target = rep["settings"]["p99_target_ms"]
    p99_ax.axhline(target, color="tab:red", lw=0.7, ls=":", label=f"p99 bar {target:g} ms")
    p99_ax.set_yscale("log")
    p99_ax.set_ylabel("p99 latency (ms, log)", color="tab:red")
    best = rep["open_loop"]["best_rate_rps"]
    if best is not None:
        left.axvline(best, color="tab:green", lw=1)
        left.text(
            best, 0.02, f" best {best:g}/s", color="tab:green", transform=left.get_xaxis_transform()
        )
    lines = left.get_legend_handles_labels()
    more = p99_ax.get_legend_handles_labels()
    left.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left")
    left.set_title(f"payswitch open loop (bar: p99 < {target:g} ms, no deadline miss)")
    c = rep["ceiling"]
    names = ["payswitch", "bare 4-hop chain", "bare echo"]
    values = [c["payswitch_peak_rps"], c["chain4_peak_rps"], c["echo_peak_rps"]]
    shown = [(n, v) for n, v in zip(names, values, strict=True) if v]
    bars = right.bar(
        [n for n, _ in shown],
        [v for _, v in shown],
        color=["tab:blue", "tab:orange", "tab:green"][: len(shown)],
    )
    for bar, (_, v) in zip(bars, shown, strict=True):
        right.text(
            bar.get_x() + bar.get_width() / 2,
            v,
            f"{v:,.0f}/s",
            ha="center",
            va="bottom",
            fontsize=9,
        )
    right.set_yscale("log")
    right.set_ylabel("closed-loop peak (completed / s, log)")
    right.set_title("peak throughput, same generator, same run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw(rep: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """Draw all three; returns {name: file name}."""
    files = {
        "latency_over_time": "latency_over_time.png",
        "latency_cdf": "latency_cdf.png",
        "throughput_vs_load": "throughput_vs_load.png",
    }
    latency_over_time(rep, out_dir / files["latency_over_time"])
    latency_cdf(rep, out_dir / files["latency_cdf"])
    throughput_vs_load(rep, out_dir / files["throughput_vs_load"])
    return files


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m benchmarks.plots REPORT.json")
    path = Path(args[0])
    draw(json.loads(path.read_text()), path.parent)


if __name__ == "__main__":
    main()
