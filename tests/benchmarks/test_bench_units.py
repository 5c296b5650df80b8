"""Fast checks of the benchmark's building blocks (no processes, no HSM)."""

from __future__ import annotations

import itertools
import math
import os

import pytest

from benchmarks import loadgen, procstat, stats, traffic
from benchmarks.phases import Phase, meets_target, saturated
from payswitch.v1 import common_pb2, terminal_pb2


def test_appended_stan_and_key_parse_as_the_same_request() -> None:
    base = terminal_pb2.AuthorizeRequest(
        terminal_id="T-B0001",
        merchant_id="M-GROCER",
        local_time="2026-11-21T10:00:00",
        amount=common_pb2.Money(minor_units=1250, currency="EUR"),
        entry_mode=common_pb2.ENTRY_MODE_CHIP,
        encrypted_card=terminal_pb2.EncryptedCard(ksn=b"k" * 12, ciphertext=b"c" * 32),
        mac=b"m" * 16,
    )
    for stan in (1, 127, 128, 999_999):
        raw = base.SerializeToString() + traffic.stan_and_key(stan, f"key-{stan}")
        want = terminal_pb2.AuthorizeRequest()
        want.CopyFrom(base)
        want.stan, want.idempotency_key = stan, f"key-{stan}"
        assert terminal_pb2.AuthorizeRequest.FromString(raw) == want


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert stats.percentile(values, 50) == 50.0
    assert stats.percentile(values, 99) == 99.0
    assert stats.percentile(values, 99.9) == 100.0
    assert math.isnan(stats.percentile([], 50))
    s = stats.summary(values)
    assert s["n"] == 100 and s["max"] == 100.0 and s["p90"] == 90.0
    assert stats.summary([])["p99"] is None


def test_cdf_points_are_monotonic_and_reach_the_max() -> None:
    pts = stats.cdf_points([float(v) for v in range(1000)])
    assert pts[-1] == (999.0, 1.0)
    assert all(a[0] <= b[0] and a[1] < b[1] for a, b in itertools.pairwise(pts))


def test_per_second_rate_accounts_for_a_partial_last_bucket() -> None:
    ends = [0.1, 0.5, 1.2, 1.3]
    out = stats.per_second(ends, [1.0, 2.0, 3.0, 4.0], start_s=0.0, window_s=1.5)
    assert [b["n"] for b in out] == [2, 2]
    assert out[1]["rate"] == 4.0  # 2 completions in the half second of window left


def test_own_cpu_is_readable() -> None:
    cpu = procstat.process_cpu_s(os.getpid())
    assert cpu is not None and cpu > 0
    assert procstat.process_cpu_s(2**22 + 12345) is None
    assert procstat.machine_busy_s() > 0


def test_phase_summary_counts_misses_errors_and_generator_statuses() -> None:
    phase = Phase("p", "payswitch", "open", 10.0, "approvals", origin=0.0)
    call = traffic.Call("approve", traffic.AUTHORIZE, b"", "k", "T")
    phase.rec.add(0.0, 0.0, 0.010, call, "OK", ("00", "tx1", "r1"))
    phase.rec.add(0.1, 0.1, 2.5, call, "OK", ("00", "tx2", "r2"))  # answered after 2.4 s
    phase.rec.add(0.2, 0.2, 2.2, call, "DEADLINE_EXCEEDED")
    phase.rec.add(0.3, 0.3, 0.3, call, loadgen.NOT_SENT)
    phase.rec.add(0.4, 0.4, 0.5, call, "UNAVAILABLE")
    s = phase.summary(deadline_s=2.0)
    assert s["completed_ok"] == 2 and s["error_count"] == 3
    assert s["deadline_misses"] == 3  # late answer, DEADLINE_EXCEEDED, never sent
    assert s["errors"] == {"DEADLINE_EXCEEDED": 1, loadgen.NOT_SENT: 1, "UNAVAILABLE": 1}
    assert not meets_target(s, 100.0)
    # CPU per answered request: the generator's NOT_SENT is not the system's work.
    phase.cpu = {"cpu_s": {"switch-1": 0.004, "generator": 0.002}}
    assert phase.summary(deadline_s=2.0)["cpu_ms_per_request"] == {
        "switch-1": 1.0,
        "generator": 0.5,
    }


def test_sweep_rates_are_distinct_and_positive() -> None:
    assert loadgen.sweep_rates(200.0, (0.1, 0.25, 0.5, 1.0)) == [20.0, 50.0, 100.0, 200.0]
    assert loadgen.sweep_rates(3.0, (0.1, 0.2)) == [5.0]
    with pytest.raises(ValueError):
        loadgen.concurrency_list("0,4")


def test_mix_drops_chip_sales_without_arqcs_and_pin_without_pin_cards() -> None:
    fleet = traffic.Fleet([("T-B0000", "M-GROCER")], {})
    mix = traffic.MixFeed(fleet, pin_cards={})
    assert "emv" not in mix.weights and "pin" not in mix.weights
    assert mix.weights["approve"] > 0


def test_saturation_is_falling_behind_missing_or_a_slow_tail() -> None:
    def summary(achieved: float, misses: int = 0, p99: float | None = 50.0) -> dict:
        return {
            "offered_rps": 100.0,
            "throughput_rps": achieved,
            "deadline_misses": misses,
            "requests": 1000,
            "latency_ms": {"p99": p99},
        }

    assert not saturated(summary(99.0), deadline_s=2.0)
    assert not saturated(summary(99.0, p99=900.0), deadline_s=2.0)  # slow, not yet saturated
    assert saturated(summary(80.0), deadline_s=2.0)
    assert saturated(summary(99.0, misses=11), deadline_s=2.0)
    assert saturated(summary(99.0, p99=1500.0), deadline_s=2.0)


def test_stage_percentiles_from_two_scrapes():
    from benchmarks import stages

    before = {"risk": {0.0005: 10.0, 0.001: 10.0, 0.0025: 10.0, float("inf"): 10.0}}
    after = {"risk": {0.0005: 60.0, 0.001: 105.0, 0.0025: 110.0, float("inf"): 110.0}}
    got = stages.percentiles(before, after, "risk")
    assert got == {"n": 100, "p50_ms": 0.5, "p99_ms": 2.5}
    assert stages.percentiles({}, {}, "risk") == {"n": 0, "p50_ms": None, "p99_ms": None}


def test_the_bench_risk_rules_evaluate_everything_and_never_act(tmp_path):
    from benchmarks.world import RISK_RULES, observe_only_rules
    from switch.risk.rules import load

    shipped, bench = load(RISK_RULES), load(observe_only_rules(tmp_path / "r.toml"))
    assert len(bench.rules) == len(shipped.rules) + len(shipped.limits) and not bench.limits
    assert (bench.step_up, bench.review, bench.decline) == (None, None, None)


def test_store_statements_per_request_over_every_switch():
    from benchmarks import stages

    before = [{"cassandra lwt": 10.0}, {"cassandra lwt": 0.0, "cassandra write": 5.0}]
    after = [{"cassandra lwt": 30.0}, {"cassandra lwt": 20.0, "cassandra write": 25.0}]
    got = stages.per_request(before, after, 20)
    assert got == {"cassandra lwt": 2.0, "cassandra write": 1.0}
    assert stages.per_request(before, after, 0) == {}
    two = stages.merged([{"risk": {0.001: 1.0}}, {"risk": {0.001: 2.0, 0.0025: 3.0}}])
    assert two == {"risk": {0.001: 3.0, 0.0025: 3.0}}


def test_bench_store_choice(tmp_path):
    from benchmarks import stores

    sqlite = stores.choose("sqlite", tmp_path, "full")
    assert sqlite.url.startswith("sqlite:///") and sqlite.keyspace is None
    with pytest.raises(ValueError):
        stores.choose("postgres", tmp_path, "full")


def test_soak_holds_only_with_flat_latency_memory_and_no_error():
    from benchmarks import soak

    assert soak.rss_mib(os.getpid()) > 0 and soak.rss_mib(2**22 + 12345) is None

    def window(p99, rss, errors=0):
        return {"latency_ms": {"p99": p99}, "rss_mib": rss, "error_count": errors}

    flat = [window(50.0, {"switch-1": 100.0, "generator": 50.0}) for _ in range(3)]
    assert soak.verdict(60.0, flat)["holds"]
    slower = [*flat, window(61.0, {"switch-1": 100.0, "generator": 50.0})]
    assert soak.verdict(60.0, slower)["p99_drift_pct"] == 22.0
    assert not soak.verdict(60.0, slower)["holds"]
    leaking = [*flat, window(50.0, {"switch-1": 106.0, "generator": 500.0})]
    assert not soak.verdict(60.0, leaking)["holds"]  # the generator's memory is not judged
    assert soak.verdict(60.0, [*flat, window(50.0, {"switch-1": 104.0}, errors=1)])["errors"] == 1
    assert soak.verdict(60.0, []) == {"ran": False}
