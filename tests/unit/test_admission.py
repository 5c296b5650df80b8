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


# -- whose allowance a request spends ------------------------------------------------------


def _gate(tls: bool):
    from pathlib import Path

    from payswitch.world.topology import load
    from switch.core.admission import Admission
    from switch.core.registry import TerminalRegistry

    topology = load(Path(__file__).resolve().parents[2] / "topology" / "default.toml")
    return Admission(
        TerminalRegistry(topology), tls=tls, max_in_flight=10, rate_per_s=0.001, burst=3
    )


def test_with_mtls_another_terminals_certificate_spends_nothing_of_the_named_terminal():
    from switch.core.registry import PermissionDenied

    gate = _gate(tls=True)
    for _ in range(10):
        with pytest.raises(PermissionDenied):
            gate.admit("T-0002", "T-0001", rate=True)
    assert gate.rates.tokens("T-0002") == 3
    assert gate.rate_at_admission
    gate.admit("T-0002", "T-0002", rate=True)  # its own certificate: its own token
    assert gate.rates.tokens("T-0002") == pytest.approx(2, abs=0.01)


def test_without_tls_a_request_spends_its_connection_allowance_until_its_mac_verifies():
    gate = _gate(tls=False)
    assert not gate.rate_at_admission
    for _ in range(3):
        gate.admit("T-0002", None, rate=True, connection="ipv4:127.0.0.1:40001")
    with pytest.raises(ResourceExhausted):  # the junk sender's own connection is spent ...
        gate.admit("T-0002", None, rate=True, connection="ipv4:127.0.0.1:40001")
    assert gate.rates.tokens("T-0002") == 3  # ... never the terminal it named
    gate.admit("T-0002", None, rate=True, connection="ipv4:127.0.0.1:40002")
    gate.take_verified("T-0002")  # a verified MAC spends the terminal's
    assert gate.rates.tokens("T-0002") == pytest.approx(2, abs=0.01)
