"""Switch metrics from the hot path: stage times from the pipeline's stage loop, shed counts
from admission, request codes from the service; each bound to the current registry."""

from __future__ import annotations

import grpc
import pytest

from switch.api.terminal import _RequestCounter
from switch.core import metrics
from switch.core.admission import InFlight, RateLimiter, ResourceExhausted
from switch.pipeline import Pipeline


def _value(m: metrics.Metrics, name: str, **labels: str) -> float:
    v = m.registry.get_sample_value(name, labels)
    return 0.0 if v is None else v


class _Replay:
    response = b""


class _Stage:
    def __init__(self, name: str, finish: bool = False) -> None:
        self.name = name
        self.finish = finish
        self.calls = 0

    async def __call__(self, ctx) -> None:
        self.calls += 1
        if self.finish:
            ctx.replay = _Replay()
            ctx.done = True


class _Ctx:
    def __init__(self) -> None:
        self.replay = None
        self.done = False
        self.claimed = False
        self.request = None
        self.started = 0.0


async def test_stage_loop_observes_each_stage_run_into_the_current_registry(monkeypatch):
    m = metrics.reset()
    stages = [_Stage("validate"), _Stage("route", finish=True), _Stage("never")]
    pipeline = Pipeline(svc=None, stages=stages)  # type: ignore[arg-type]
    monkeypatch.setattr(Pipeline, "_log", staticmethod(lambda *a, **k: None))

    async def no_seal(*_a: object) -> None:  # no HSM here: the answer's MAC is not the point
        return None

    monkeypatch.setattr(Pipeline, "_seal", no_seal)
    for _ in range(3):
        await pipeline.run(_Ctx())  # type: ignore[arg-type]
    assert _value(m, "payswitch_stage_seconds_count", stage="validate") == 3
    assert _value(m, "payswitch_stage_seconds_count", stage="route") == 3
    assert _value(m, "payswitch_stage_seconds_count", stage="never") == 0  # ended before it
    fresh = metrics.reset()  # tests swap registries: the cached children follow
    await pipeline.run(_Ctx())  # type: ignore[arg-type]
    assert _value(fresh, "payswitch_stage_seconds_count", stage="validate") == 1
    assert _value(m, "payswitch_stage_seconds_count", stage="validate") == 3


def test_shedding_is_counted_by_reason():
    m = metrics.reset()
    flight = InFlight(1)
    flight.acquire()
    with pytest.raises(ResourceExhausted):
        flight.acquire()
    rates = RateLimiter(1.0, 1, clock=lambda: 0.0)
    rates.take("T-0001")
    for _ in range(2):
        with pytest.raises(ResourceExhausted):
            rates.take("T-0001")
    assert _value(m, "payswitch_shed_total", reason="in_flight") == 1
    assert _value(m, "payswitch_shed_total", reason="terminal_rate") == 2


def test_request_counter_counts_by_rpc_and_code_and_follows_registry_resets():
    m = metrics.reset()
    count = _RequestCounter()
    count.inc("Authorize", "00")
    count.inc("Authorize", "00")
    count.inc("Echo", grpc.StatusCode.PERMISSION_DENIED.name)
    assert _value(m, "payswitch_requests_total", rpc="Authorize", code="00") == 2
    assert _value(m, "payswitch_requests_total", rpc="Echo", code="PERMISSION_DENIED") == 1
    fresh = metrics.reset()
    count.inc("Authorize", "00")
    assert _value(fresh, "payswitch_requests_total", rpc="Authorize", code="00") == 1
