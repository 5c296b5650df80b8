"""Circuit breaker transitions on an injected clock: consecutive failures, windowed error rate
with a minimum volume, cool-down, half-open probes (success closes, failure re-opens, bounded)."""

from __future__ import annotations

import pytest

from payswitch.world.topology import BreakerConfig
from switch.core import metrics
from switch.routing.breakers import CLOSED, HALF_OPEN, OPEN, Breakers, CircuitBreaker

CFG = BreakerConfig(
    failure_threshold=3, error_rate=0.5, window_s=10, min_volume=6, open_s=5, half_open_probes=2
)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock():
    metrics.reset()
    return Clock()


def gauge(acquirer: str) -> float:
    return metrics.get().circuit_state.labels(acquirer)._value.get()


def opened(clock: Clock, cfg: BreakerConfig = CFG) -> CircuitBreaker:
    b = CircuitBreaker("acq", cfg, clock)
    for _ in range(cfg.failure_threshold):
        assert b.allow()
        b.failure()
    assert b.state == OPEN
    return b


def test_consecutive_failures_open_the_circuit(clock):
    b = CircuitBreaker("acq", CFG, clock)
    assert gauge("acq") == metrics.CIRCUIT_CLOSED
    for _ in range(2):
        b.allow()
        b.failure()
    assert b.state == CLOSED
    b.allow()
    b.success()  # a success resets the run
    for _ in range(2):
        b.allow()
        b.failure()
    assert b.state == CLOSED and b.snapshot().consecutive_failures == 2
    b.failure()
    assert b.state == OPEN and not b.allow() and not b.available()
    assert gauge("acq") == metrics.CIRCUIT_OPEN
    assert b.snapshot().opened_at == 1000.0


def test_error_rate_opens_only_with_the_minimum_volume(clock):
    cfg = BreakerConfig(failure_threshold=100, error_rate=0.5, window_s=10, min_volume=6)
    b = CircuitBreaker("acq", cfg, clock)
    for ok in (True, False, True, False, True):  # 2/5 failed; 5 < min_volume
        b.success() if ok else b.failure()
    assert b.state == CLOSED
    b.failure()  # 3/6 = 0.5 with 6 calls
    assert b.state == OPEN


def test_error_rate_forgets_calls_outside_the_window(clock):
    cfg = BreakerConfig(failure_threshold=100, error_rate=0.5, window_s=10, min_volume=4)
    b = CircuitBreaker("acq", cfg, clock)
    b.failure()
    b.failure()
    clock.t += 11  # both failures leave the window
    b.success()
    b.success()
    b.failure()
    assert b.error_rate() == pytest.approx(1 / 3)
    b.success()  # 1/4 failed
    assert b.state == CLOSED


def test_cool_down_then_half_open_probe_success_closes(clock):
    b = opened(clock)
    clock.t += 4.9
    assert not b.allow()
    clock.t += 0.1
    assert b.state == HALF_OPEN and b.available()
    assert b.allow()
    assert gauge("acq") == metrics.CIRCUIT_HALF_OPEN
    b.success()
    assert b.state == CLOSED and b.snapshot().consecutive_failures == 0
    assert gauge("acq") == metrics.CIRCUIT_CLOSED


def test_half_open_probe_failure_reopens_for_another_cool_down(clock):
    b = opened(clock)
    clock.t += 5
    assert b.allow()
    b.failure()
    assert b.state == OPEN and b.snapshot().opened_at == clock.t
    clock.t += 4
    assert not b.allow()
    clock.t += 1
    assert b.allow()


def test_half_open_admits_a_bounded_number_of_probes(clock):
    b = opened(clock)
    clock.t += 5
    assert b.allow() and b.allow()  # half_open_probes = 2
    assert not b.allow() and not b.available()
    b.cancel()  # one probe was not sent after all: its slot is free again
    assert b.available() and b.allow()


def test_breakers_snapshots_and_unknown_acquirers(clock):
    breakers = Breakers(["a", "b"], CFG, clock)
    for _ in range(3):
        breakers.get("a").failure()
    snaps = {s.acquirer_id: s for s in breakers.snapshots()}
    assert (snaps["a"].state, snaps["b"].state) == (OPEN, CLOSED)
    assert snaps["a"].error_rate == 1.0
    assert not breakers.available("a") and breakers.available("b")
    assert breakers.available("not-configured")
