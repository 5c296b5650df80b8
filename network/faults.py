"""Fault injection: per-request decisions from a seeded generator, and how each fault behaves.

Two sources, both applied by ``network.hop``: the static rates of the topology file
(``FaultInjector``), and the runtime faults a test sets over ``NodeControlService``
(``FaultControl``: added latency, fail before acting, drop the answer after acting). The
runtime ones are a test and simulation facility; see ``network.control``.

One draw per request decides between the three faults, so a given ``--seed`` replays the same
sequence of decisions. The rates are read cumulatively (error, then timeout, then dropped
response); if a topology makes them sum past 1 the later ones get what is left.
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
from dataclasses import dataclass, field
from typing import NoReturn

import grpc

from network.deadline import Budget
from network.latency import LatencySampler
from payswitch.v1 import common_pb2
from payswitch.world.topology import Faults, Latency

# A call without a deadline is never held longer than this before it is failed.
MAX_HOLD_S = 30.0


class Fault(enum.Enum):
    NONE = "none"
    ERROR = "error"  # answer UNAVAILABLE, do nothing
    TIMEOUT = "timeout"  # never answer, do nothing
    DROP_RESPONSE = "drop_response"  # act (forward), then never answer


class FaultInjector:
    def __init__(self, faults: Faults, rng: random.Random) -> None:
        self._faults = faults
        self._rng = rng
        self._active = (faults.error_rate + faults.timeout_rate + faults.drop_response_rate) > 0

    def decide(self) -> Fault:
        if not self._active:
            return Fault.NONE
        u = self._rng.random()
        f = self._faults
        if u < f.error_rate:
            return Fault.ERROR
        if u < f.error_rate + f.timeout_rate:
            return Fault.TIMEOUT
        if u < f.error_rate + f.timeout_rate + f.drop_response_rate:
            return Fault.DROP_RESPONSE
        return Fault.NONE


async def fail_unavailable(context: grpc.aio.ServicerContext, node_id: str) -> NoReturn:
    await context.abort(grpc.StatusCode.UNAVAILABLE, f"{node_id}: injected fault")
    raise AssertionError("unreachable")  # pragma: no cover - abort always raises


async def never_answer(context: grpc.aio.ServicerContext, budget: Budget, node_id: str) -> NoReturn:
    """Hold the call until the caller's deadline (bounded), then fail it.

    gRPC cancels this handler when the caller's deadline passes, so normally the sleep is
    interrupted; the abort only ends calls whose deadline was the default budget.
    """
    await asyncio.sleep(min(max(budget.remaining(), 0.0), MAX_HOLD_S) + 0.05)
    await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"{node_id}: no answer (injected)")
    raise AssertionError("unreachable")  # pragma: no cover


# -- runtime faults, set over NodeControlService (network.control) ---------------------------

OPERATIONS = frozenset({"authorize", "reverse", "capture", "refund"})


class DropMode(enum.Enum):
    ABORT = "abort"  # act, then fail the call with UNAVAILABLE
    HOLD = "hold"  # act, then never answer (until the caller's deadline)


@dataclass(frozen=True, slots=True)
class RuntimeFaults:
    """One node's runtime faults (the test harness's knobs), validated.

    ``fail_code``: an ISO response code (proto enum value) answered instead of acting; None
    means abort with ``fail_status``.
    """

    latency: Latency = field(default_factory=Latency)
    latency_rate: float = 1.0
    fail_rate: float = 0.0
    fail_status: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    fail_code: common_pb2.ResponseCode | None = None
    drop_rate: float = 0.0
    drop_mode: DropMode = DropMode.ABORT
    operations: frozenset[str] = frozenset()  # empty: every operation
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("latency_rate", "fail_rate", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0 or math.isnan(value):
                raise ValueError(f"{name}: must be between 0 and 1")
        unknown = self.operations - OPERATIONS
        if unknown:
            raise ValueError(f"operations: unknown {sorted(unknown)}")
        if self.fail_status is grpc.StatusCode.OK:
            raise ValueError("fail.grpc_status: OK is not a failure")


@dataclass(frozen=True, slots=True)
class RuntimeDraw:
    """What the runtime faults do to one request."""

    latency_s: float = 0.0
    fail: RuntimeFaults | None = None  # the set whose failure (status or code) applies
    drop: DropMode | None = None


NO_DRAW = RuntimeDraw()


class FaultControl:
    """The runtime faults of one node, replaced as a whole by SetFaults and ClearFaults.

    Each request that matches draws three numbers (latency, fail, drop) from the set's own
    generator, always all three, so a seed gives the same decisions for the same sequence of
    requests whatever the earlier draws decided.
    """

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._faults: RuntimeFaults | None = None
        self._rng = random.Random()
        self._latency: LatencySampler | None = None

    @property
    def faults(self) -> RuntimeFaults | None:
        return self._faults

    def set(self, faults: RuntimeFaults) -> None:
        seed = faults.seed
        self._rng = random.Random() if seed is None else random.Random(f"{seed}/{self.node_id}")
        self._latency = LatencySampler(faults.latency, self._rng)
        self._faults = faults

    def clear(self) -> None:
        self._faults = None
        self._latency = None

    def draw(self, op: str) -> RuntimeDraw:
        f, sampler = self._faults, self._latency
        if f is None or sampler is None or (f.operations and op not in f.operations):
            return NO_DRAW
        u_latency, u_fail, u_drop = self._rng.random(), self._rng.random(), self._rng.random()
        latency_s = 0.0
        if sampler.active and u_latency < f.latency_rate:
            latency_s = sampler.sample_ms() / 1000.0
        if u_fail < f.fail_rate:
            return RuntimeDraw(latency_s, fail=f)
        return RuntimeDraw(latency_s, drop=f.drop_mode if u_drop < f.drop_rate else None)


async def drop_answer(
    context: grpc.aio.ServicerContext, budget: Budget, node_id: str, mode: DropMode
) -> NoReturn:
    """The node has acted; the caller never learns how."""
    if mode is DropMode.HOLD:
        await never_answer(context, budget, node_id)
    await context.abort(grpc.StatusCode.UNAVAILABLE, f"{node_id}: answer dropped (injected)")
    raise AssertionError("unreachable")  # pragma: no cover
