"""Smoke test of ``payswitch-bench --quick`` with tiny bounds: the whole suite runs (stack,
ghz when installed, ceilings, dependency rates, the flame graph, the second stack without the
risk stage) and leaves a well-formed report. It checks the
shape of what is produced, never a speed: the machine may be busy with anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = [
    "--quick",
    "--duration", "0.5",
    "--warmup", "0.3",
    "--mix-seconds", "0.5",
    "--ceiling-duration", "0.5",
    "--deps-seconds", "0.1",
    "--terminals", "6",
    "--concurrency", "1,4",
    "--ghz-concurrency", "4",
    "--profile",
]  # fmt: skip

LATENCY_KEYS = {"n", "mean", "p50", "p90", "p99", "p99.9", "max"}
PHASE_KEYS = {
    "name",
    "target",
    "mode",
    "workload",
    "requests",
    "completed_ok",
    "throughput_rps",
    "latency_ms",
    "errors",
    "error_count",
    "deadline_misses",
    "response_codes",
    "send_lag_ms",
    "cpu",
    "series",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    results = tmp_path_factory.mktemp("bench-results")
    # A child process: the suite creates its own throwaway HSM token and exports it, which
    # must not leak into this test session.
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.cli", *TINY, "--results-dir", str(results)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (folder,) = [p for p in results.iterdir() if p.is_dir()]
    return folder, done.stdout


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_quick_run_writes_every_file(run: tuple[Path, str]) -> None:
    folder, stdout = run
    for name in ("report.json", "summary.txt"):
        assert (folder / name).stat().st_size > 0
    for name in ("latency_over_time.png", "latency_cdf.png", "throughput_vs_load.png"):
        assert (folder / name).read_bytes()[:8] == PNG_MAGIC, name
    summary = (folder / "summary.txt").read_text()
    assert "closed loop" in summary and "ceiling" in summary
    assert summary.strip().splitlines()[0] in stdout  # the summary is also printed


@pytest.mark.e2e
def test_report_is_well_formed(run: tuple[Path, str]) -> None:
    folder, _ = run
    rep = json.loads((folder / "report.json").read_text())
    assert rep["schema"] == "payswitch-bench/1"
    assert isinstance(rep["machine"]["cpus"], int)
    assert len(rep["machine"]["load_average_start"]) == 3
    phases = rep["phases"]
    targets = {p["target"] for p in phases}
    assert targets == {"payswitch", "echo", "chain4"}
    modes = {(p["target"], p["mode"], p["workload"]) for p in phases}
    assert ("payswitch", "closed", "approvals") in modes
    assert ("payswitch", "open", "approvals") in modes
    assert ("payswitch", "open", "mix") in modes
    for p in phases:
        assert PHASE_KEYS <= p.keys(), p["name"]
        assert set(p["latency_ms"]) == LATENCY_KEYS
        assert isinstance(p["throughput_rps"], float)
        assert isinstance(p["deadline_misses"], int)
        assert isinstance(p["errors"], dict)
        assert p["requests"] >= p["completed_ok"] >= 0
        assert "generator" in p["cpu"]["cpu_s"]
        assert isinstance(p["series"]["cdf"], list)
    assert rep["warmup"] is not None and rep["warmup"]["mode"] == "warmup"
    assert all(p["mode"] != "warmup" for p in phases)  # warm-up excluded from the figures
    ol = rep["open_loop"]
    assert ol["offered_rps"] and ol["criterion"]["p99_below_ms"] == 100.0
    assert ol["best_rate_rps"] is None or ol["best_rate_rps"] in ol["offered_rps"]
    ceiling = rep["ceiling"]
    for key in ("payswitch_peak_rps", "echo_peak_rps", "chain4_peak_rps"):
        assert isinstance(ceiling[key], float)
    assert isinstance(ceiling["payswitch_pct_of_echo"], float)
    assert isinstance(ceiling["switch_own_added_ms"], dict)
    mix = next(p for p in phases if p["workload"] == "mix")
    assert "latency_ms_by_kind" in mix
    assert rep["mix"]["weights"]["emv"] > 0  # chip sales with real ARQCs in the mix
    assert not any("EMV" in x for x in rep["not_covered"])
    assert isinstance(rep["mix"]["retry_answer_mismatches"], int)
    for name, added in rep["switch_added"].items():
        assert set(added) == {"joined", "switch_ms", "acquirer_ms", "switch_added_ms"}, name
    assert rep["forwarder_added"]
    ghz = rep["ghz"]
    assert isinstance(ghz["ran"], bool)
    if ghz["ran"]:
        assert set(ghz["latency_ms"]) == LATENCY_KEYS and isinstance(ghz["rps"], float)
    else:
        assert ghz["reason"]
    deps = rep["deps"]
    assert isinstance(deps["ran"], bool)
    if deps["ran"]:
        assert deps["hsm_via_pool_ops_per_s"]["tokenize"] > 0
        assert set(deps["store"]) == {"full", "normal"}
    assert isinstance(rep["honesty"]["generator_core_pct_by_phase"], dict)
    assert isinstance(rep["not_covered"], list)  # empty once the mix has PIN and chip sales
    cpu = rep["cpu_per_auth"]
    assert cpu["store_statements_per_auth"]["sqlite commit"] > 0  # group commit: may be < 3
    assert cpu["phase"] == ceiling["payswitch_peak_phase"]
    assert cpu["switch_ms"] > 0 and cpu["by_process_ms"]["generator"] > 0
    assert cpu["chain4_by_process_ms"]
    profile = rep["profile"]  # py-spy on the switch at the peak's concurrency, excluded
    assert profile["ran"], profile
    assert Path(profile["svg"]).read_bytes().lstrip().startswith((b"<?xml", b"<svg"))
    assert all(p["mode"] != "profile" for p in phases)
    risk = rep["risk_compare"]  # issue 14: with and without the risk stage, same run
    assert risk["ran"] and risk["concurrency"] == max(
        p["concurrency"] for p in phases if p["name"] == ceiling["payswitch_peak_phase"]
    )
    assert risk["with_risk_rps"] > 0 and risk["without_risk_rps"] > 0
    assert risk["rounds"] >= 1 and len(risk["round_pcts"]) == risk["rounds"]  # alternated
    assert isinstance(risk["throughput_within_10pct"], bool)
    assert risk["risk_stage_ms"]["n"] > 0
    assert all(p["target"] != "payswitch-without-risk" for p in phases)


@pytest.mark.e2e
def test_overload_and_recovery_phase_is_reported(run: tuple[Path, str]) -> None:
    folder, _ = run
    rep = json.loads((folder / "report.json").read_text())
    o = rep["overload"]
    assert o["overload_rps"] >= 2 * o["recover_rps"] - 1  # 2x the peak, then half of it
    assert {p["workload"] for p in rep["phases"]} >= {"overload", "recovery"}
    assert o["per_second"] and o["per_second"][0]["t"] == 0
    for row in o["per_second"]:
        assert {"offered", "ok", "errors", "deadline_misses", "code_91", "p99_ms"} <= row.keys()
        assert row["phase"] in ("overload", "recovery")
    assert sum(r["offered"] for r in o["per_second"]) == (
        o["overload"]["requests"] + o["recovery"]["requests"]
    )
    assert o["recovered"] in (True, False, None)  # tiny phases: usually not judged
    assert "overload and recovery" in (folder / "summary.txt").read_text()
