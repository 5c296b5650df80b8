"""Fault injection: per-request decisions from a seeded generator, and how each fault behaves.

One draw per request decides between the three faults, so a given ``--seed`` replays the same
sequence of decisions. The rates are read cumulatively (error, then timeout, then dropped
response); if a topology makes them sum past 1 the later ones get what is left.
"""

from __future__ import annotations

import asyncio
import enum
import random
from typing import NoReturn

import grpc

from network.deadline import Budget
from network.topology import Faults

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
