"""Smoke test of ``make bench-day`` at a tiny size: two days on SQLite (the network nodes as
processes, the generator, cut-off and reconciliation each a process) leave a well-formed report
whose reconciliation found exactly the injected discrepancies. The shape only, never a speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_bench_day_reports_each_step_and_an_exact_recon(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.day.run", "--sizes", "1000,2000", "--store", "sqlite",
         "--terminals", "8", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (report,) = tmp_path.glob("day-*.json")
    doc = json.loads(report.read_text())
    assert [(d["backend"], d["size"]) for d in doc["days"]] == [("sqlite", 1000), ("sqlite", 2000)]
    for day in doc["days"]:
        assert [s["name"] for s in day["steps"]] == ["generate", "cutoff", "recon"]
        assert day["recon_exact"] and day["recon_found"]["missing"] == 0
        assert day["recon_found"]["expected"] >= 20  # ten kinds, a few of each
        for step in day["steps"]:
            assert step["exit"] in (0, 1) and step["seconds"] > 0 and step["peak_rss_mb"] > 0
            assert step["rows"] > 0
        assert set(day["nodes_peak_rss_mb"]) >= {"bank-a", "acq-alpha", "visanet"}
        assert all(v and v > 0 for v in day["nodes_peak_rss_mb"].values())
    assert doc["growth"]["sqlite"]["size_factor"] == 2.0
    assert (tmp_path / report.name.replace(".json", ".txt")).read_text().startswith("day benchmark")
    assert not [p for p in tmp_path.glob("day-*") if p.is_dir()], "run dirs go without --keep"
