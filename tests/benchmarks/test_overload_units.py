"""The overload-and-recovery phase's arithmetic (benchmarks/overload.py) on made-up records:
its plan, the per-second timeline by offered time, and the recovery verdict."""

from __future__ import annotations

from benchmarks import overload
from benchmarks.loadgen import Recorder
from benchmarks.phases import Phase
from benchmarks.traffic import Call

CALL = Call("approve", "Authorize", b"", "k", "T-1")


def _phase(workload: str, rows: list[tuple[float, float, str, str]]) -> Phase:
    p = Phase(workload, "payswitch", "open", 1.0, workload, 0.0)
    p.rec = Recorder()
    for sched, lat_s, status, code in rows:
        p.rec.add(sched, sched, sched + lat_s, CALL, status, (code, "", ""))
    return p


def test_the_plan_is_twice_then_half_the_peak():
    full = overload.plan(226.0, quick=False, duration_s=10)
    assert (full.overload_rps, full.recover_rps, full.overload_s, full.recover_s) == (
        452,
        113,
        10.0,
        15.0,
    )
    quick = overload.plan(100.0, quick=True, duration_s=0.5)
    assert (quick.overload_s, quick.recover_s) == (0.5, 1.25)
    bench_quick = overload.plan(100.0, quick=True, duration_s=2.0)
    assert (bench_quick.overload_s, bench_quick.recover_s) == (2.0, 5.0)


def test_timeline_and_verdict():
    p = overload.Plan(4, 1, 2.0, 7.0)
    over = _phase(
        "overload",
        [(0.1, 0.05, "OK", "00"), (0.2, 0.0, "RESOURCE_EXHAUSTED", ""), (1.5, 0.3, "OK", "91")],
    )
    # The recovery: a slow answer in its first second, then fast ones every second.
    rows = [(2.1, 0.5, "OK", "00")] + [(2.0 + s + 0.5, 0.02, "OK", "00") for s in range(1, 7)]
    rec = _phase("recovery", rows)
    timeline = overload._timeline(over, rec, 0.0, p, deadline_s=2.0)
    first = timeline[0]
    assert (first["offered"], first["ok"], first["errors"]) == (2, 1, 1)
    assert first["by_status"] == {"RESOURCE_EXHAUSTED": 1}
    assert timeline[1]["code_91"] == 1 and timeline[1]["p99_ms"] == 300.0
    assert [r["phase"] for r in timeline][2:] == ["recovery"] * 7
    v = overload._verdict(timeline, p, p99_ms=100.0)
    assert v["recovered"] is True and v["recovered_after_s"] == 1
    lines = overload.summary_lines(
        {
            **v,
            "overload_rps": 4,
            "recover_rps": 1,
            "overload_s": 2.0,
            "recover_s": 7.0,
            "peak_rps": 2.0,
            "per_second": timeline,
            "switch_metrics": {},
        }
    )
    assert any("recovered" in line and "yes" in line for line in lines)


def test_an_error_late_in_the_recovery_fails_the_verdict():
    p = overload.Plan(4, 1, 1.0, 6.0)
    over = _phase("overload", [(0.1, 0.01, "OK", "00")])
    rows = [(1.0 + s + 0.5, 0.01, "OK", "00") for s in range(6)]
    rows[5] = (6.5, 0.0, "UNAVAILABLE", "")
    v = overload._verdict(
        overload._timeline(over, _phase("recovery", rows), 0.0, p, 2.0), p, p99_ms=100.0
    )
    assert v["recovered"] is False and v["recovered_after_s"] is None


def test_the_switches_metrics_are_found_in_either_shape_of_the_suite():
    class One:
        metrics_address = "127.0.0.1:9464"

    class Many:
        metrics_addresses = ["127.0.0.1:1", "127.0.0.1:2"]

    class Neither:
        metrics_address = ""

    assert overload.switch_metrics(One()) == ["127.0.0.1:9464"]
    assert overload.switch_metrics(Many()) == ["127.0.0.1:1", "127.0.0.1:2"]
    assert overload.switch_metrics(Neither()) == []
