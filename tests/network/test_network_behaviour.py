"""Latency sampling, fault decisions and deadline arithmetic, without any server."""

from __future__ import annotations

import random
import statistics
import time

import pytest

from network.deadline import DEFAULT_BUDGET_S, Budget
from network.faults import Fault, FaultInjector
from network.hop import rngs
from network.latency import LatencySampler
from payswitch.world.topology import Faults, Latency


class _Ctx:
    def __init__(self, remaining: float | None) -> None:
        self._remaining = remaining

    def time_remaining(self) -> float | None:
        return self._remaining


def test_budget_subtracts_the_margin() -> None:
    budget = Budget.of(_Ctx(0.5))
    onward = budget.onward(20)
    assert onward is not None and 0.45 < onward <= 0.48


def test_budget_with_nothing_left_forwards_nothing() -> None:
    assert Budget.of(_Ctx(0.015)).onward(20) is None
    assert Budget.of(_Ctx(-1.0)).onward(0) is None


def test_no_caller_deadline_means_the_default_budget() -> None:
    budget = Budget.of(_Ctx(None))
    assert DEFAULT_BUDGET_S - 0.05 < budget.remaining() <= DEFAULT_BUDGET_S


def test_budget_is_charged_for_time_spent() -> None:
    budget = Budget(time.monotonic() - 0.01)
    assert budget.remaining() < 0 and budget.onward(0) is None


def test_fixed_and_uniform_latency() -> None:
    fixed = LatencySampler(Latency("fixed", ms=7), random.Random(1))
    assert fixed.active and fixed.sample_ms() == 7
    uni = LatencySampler(Latency("uniform", min_ms=2, max_ms=4), random.Random(1))
    draws = [uni.sample_ms() for _ in range(1000)]
    assert 2 <= min(draws) and max(draws) <= 4
    assert not LatencySampler(Latency(), random.Random(1)).active


def test_lognormal_latency_has_the_configured_median_and_p99() -> None:
    lat = LatencySampler(Latency("lognormal", median_ms=2, p99_ms=12), random.Random(7))
    draws = sorted(lat.sample_ms() for _ in range(20_000))
    assert statistics.median(draws) == pytest.approx(2, rel=0.08)
    assert draws[int(0.99 * len(draws))] == pytest.approx(12, rel=0.15)


async def test_latency_delay_is_capped_by_the_budget() -> None:
    slow = LatencySampler(Latency("fixed", ms=5_000), random.Random(1))
    start = time.monotonic()
    await slow.delay(cap_s=0.02)
    assert time.monotonic() - start < 0.5


def test_fault_rates_and_reproducibility() -> None:
    faults = Faults(error_rate=0.1, timeout_rate=0.2, drop_response_rate=0.3)
    a = FaultInjector(faults, rngs(42, "acq")[0])
    b = FaultInjector(faults, rngs(42, "acq")[0])
    seq_a = [a.decide() for _ in range(10_000)]
    assert seq_a == [b.decide() for _ in range(10_000)]
    share = {f: seq_a.count(f) / len(seq_a) for f in Fault}
    assert share[Fault.ERROR] == pytest.approx(0.1, abs=0.02)
    assert share[Fault.TIMEOUT] == pytest.approx(0.2, abs=0.02)
    assert share[Fault.DROP_RESPONSE] == pytest.approx(0.3, abs=0.02)
    assert share[Fault.NONE] == pytest.approx(0.4, abs=0.02)
    # another node with the same seed draws a different sequence
    other = FaultInjector(faults, rngs(42, "scheme")[0])
    assert [other.decide() for _ in range(10_000)] != seq_a


def test_no_faults_configured_means_none() -> None:
    inj = FaultInjector(Faults(), random.Random(1))
    assert {inj.decide() for _ in range(100)} == {Fault.NONE}
    always = FaultInjector(Faults(error_rate=1.0), random.Random(1))
    assert {always.decide() for _ in range(100)} == {Fault.ERROR}
