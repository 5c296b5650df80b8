"""What every node does around its real work: latency, fault injection, budget, one log line.

Acquirer and scheme nodes forward; the issuer acts on its books. Both are a ``step`` that
gets the time it may use (the caller's remaining deadline minus this node's margin). When no
time is left the node does not call onward and answers 91 (issuer unavailable) itself.

Order per request: one fault draw, the injected latency (which may overrun the caller's
deadline: gRPC then cancels the call and nothing is forwarded), then the fault or the step.
Runtime faults (``hop.control``, set over NodeControlService) are drawn next to the static
ones: their latency follows the static latency, their failure comes after the static faults
and before the step, and their dropped answer after the step.

An onward call that fails (deadline, unavailable, ...) is passed back with the same status
code, never turned into a decline: the next hop may have acted, so the caller must treat the
outcome as unknown and reverse.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import grpc

from network.deadline import Budget
from network.faults import (
    Fault,
    FaultControl,
    FaultInjector,
    drop_answer,
    fail_unavailable,
    never_answer,
)
from network.latency import LatencySampler
from payswitch import logs, tracing
from payswitch.v1 import common_pb2
from payswitch.world.topology import Faults, Latency

ISSUER_UNAVAILABLE = common_pb2.RESPONSE_CODE_ISSUER_UNAVAILABLE
# How far injected latency may run past the caller's deadline.
OVERRUN_CAP_S = 1.0

_log = logs.get("network.hop")


class _Answer(Protocol):
    @property
    def response_code(self) -> int: ...


R = TypeVar("R", bound=_Answer)


@dataclass(frozen=True, slots=True)
class Decline:
    """This node answers the request itself with ``code`` instead of calling ``step``."""

    code: common_pb2.ResponseCode


Step = Callable[[float], Awaitable[R]]


def rngs(seed: int | None, node_id: str) -> tuple[random.Random, random.Random]:
    """(faults, latency) generators: reproducible per node for a given seed."""
    if seed is None:
        return random.Random(), random.Random()
    return random.Random(f"{seed}/{node_id}/faults"), random.Random(f"{seed}/{node_id}/latency")


class Hop:
    def __init__(
        self,
        node_id: str,
        margin_ms: float,
        latency: Latency,
        faults: Faults,
        seed: int | None,
    ) -> None:
        fault_rng, latency_rng = rngs(seed, node_id)
        self.node_id = node_id
        self.margin_ms = margin_ms
        self.latency = LatencySampler(latency, latency_rng)
        self.faults = FaultInjector(faults, fault_rng)
        self.control = FaultControl(node_id)

    async def run(
        self,
        context: grpc.aio.ServicerContext,
        op: str,
        rrn: str,
        target: Step[R] | Decline,
        answer: Callable[[common_pb2.ResponseCode], R],
    ) -> R:
        """Run one request through this node; logs exactly one line (unless cancelled)."""
        start = time.perf_counter()
        budget = Budget.of(context)
        fault = self.faults.decide()
        runtime = self.control.draw(op)

        def done(outcome: str) -> None:
            tracing.annotate({"payswitch.rrn": rrn, "payswitch.outcome": outcome})
            _log.info(
                op,
                rrn=rrn,
                outcome=outcome,
                fault=fault.value,
                ms=round((time.perf_counter() - start) * 1000, 2),
            )

        # A slow node is really slow: it overruns the caller's deadline, and the caller sees
        # DEADLINE_EXCEEDED (an unknown outcome), never a quick 91 from a node that knew it
        # would be late. gRPC cancels this handler at the deadline; the cap only bounds the
        # sleep, and stays clear of the deadline so that no answer can race it.
        await self.latency.delay(cap_s=budget.remaining() + OVERRUN_CAP_S)
        if runtime.latency_s > 0:
            await asyncio.sleep(min(runtime.latency_s, max(budget.remaining() + OVERRUN_CAP_S, 0)))
        if fault is Fault.ERROR:
            done("UNAVAILABLE")
            await fail_unavailable(context, self.node_id)
        if fault is Fault.TIMEOUT:
            done("held")
            await never_answer(context, budget, self.node_id)
        failure = runtime.fail
        if failure is not None and failure.fail_code is None:
            done(f"{failure.fail_status.name} (injected)")
            await context.abort(failure.fail_status, f"{self.node_id}: injected failure")
        if failure is not None and failure.fail_code is not None:
            result = answer(failure.fail_code)
        elif isinstance(target, Decline):
            result = answer(target.code)
        else:
            timeout = budget.onward(self.margin_ms)
            if timeout is None:
                result = answer(ISSUER_UNAVAILABLE)
            else:
                try:
                    result = await target(timeout)
                except grpc.aio.AioRpcError as exc:
                    code = exc.code()
                    done(code.name)
                    if fault is Fault.DROP_RESPONSE:
                        await never_answer(context, budget, self.node_id)
                    await context.abort(code, f"{self.node_id}: onward call failed: {code.name}")
                    raise AssertionError("unreachable") from None  # pragma: no cover
        done(common_pb2.ResponseCode.Name(result.response_code).removeprefix("RESPONSE_CODE_"))
        if fault is Fault.DROP_RESPONSE:
            await never_answer(context, budget, self.node_id)
        if runtime.drop is not None:
            await drop_answer(context, budget, self.node_id, runtime.drop)
        return result
