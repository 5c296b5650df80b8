"""Admission control: the in-flight bound and the per-terminal token bucket, with an injected
clock so the refill arithmetic is exact."""

import grpc
import pytest

from switch.core.admission import InFlight, RateLimiter, ResourceExhausted


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_in_flight_refuses_above_the_bound_and_frees_on_release():
    slots = InFlight(2)
    slots.acquire()
    slots.acquire()
    with pytest.raises(ResourceExhausted) as err:
        slots.acquire()
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "overloaded" in err.value.message
    assert slots.current == 2  # a refusal takes no slot
    slots.release()
    slots.acquire()
    assert slots.current == 2


def test_burst_then_refusal_naming_the_limit():
    clock = Clock()
    rates = RateLimiter(rate_per_s=1, burst=3, clock=clock)
    for _ in range(3):
        rates.take("T-1")
    with pytest.raises(ResourceExhausted) as err:
        rates.take("T-1")
    assert "1/s" in err.value.message and "burst 3" in err.value.message
    assert rates.tokens("T-1") == 0.0  # a refusal spends nothing


def test_refill_arithmetic():
    clock = Clock()
    rates = RateLimiter(rate_per_s=2, burst=4, clock=clock)
    for _ in range(4):
        rates.take("T-1")
    clock.now += 0.25
    assert rates.tokens("T-1") == pytest.approx(0.5)
    with pytest.raises(ResourceExhausted):
        rates.take("T-1")
    clock.now += 0.25  # 0.5 s after emptying: exactly one token
    rates.take("T-1")
    assert rates.tokens("T-1") == pytest.approx(0.0)
    clock.now += 100  # refill is capped at the burst
    assert rates.tokens("T-1") == 4.0


def test_buckets_are_per_terminal():
    clock = Clock()
    rates = RateLimiter(rate_per_s=1, burst=1, clock=clock)
    rates.take("T-1")
    rates.take("T-2")
    with pytest.raises(ResourceExhausted):
        rates.take("T-1")


def test_the_map_is_bounded_evicting_the_least_recently_used():
    clock = Clock()
    rates = RateLimiter(rate_per_s=1, burst=2, max_terminals=3, clock=clock)
    for tid in ("A", "B", "C"):
        rates.take(tid)
    rates.take("A")  # A is now the most recently used; B the least
    rates.take("D")
    assert len(rates) == 3
    assert rates.tokens("B") == 2.0  # forgotten: a fresh bucket
    assert rates.tokens("A") == 0.0  # kept
