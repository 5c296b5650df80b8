"""TerminalService: the gRPC face of the switch. Each RPC starts the request's budget from
the caller's deadline, runs its operation, and turns API errors into gRPC statuses.

Before any operation runs, admission control may shed it (RESOURCE_EXHAUSTED): above the
in-flight bound for every RPC but Echo (liveness), above the terminal's rate for the
money-moving ones."""

from __future__ import annotations

import time

import grpc

from payswitch.v1 import terminal_pb2, terminal_pb2_grpc
from switch import validation
from switch.admission import Admission
from switch.budget import Budget
from switch.errors import ApiError
from switch.operations.capture import capture
from switch.operations.lookup import get_transaction
from switch.operations.refund import refund
from switch.operations.void import void
from switch.pipeline import Pipeline
from switch.pipeline.context import AuthContext
from switch.pipeline.services import Services
from switch.store.base import StoreError


class TerminalService(terminal_pb2_grpc.TerminalServiceServicer):
    def __init__(self, svc: Services, pipeline: Pipeline) -> None:
        self._svc = svc
        self._pipeline = pipeline
        self._max_budget_s = svc.config.max_budget_ms / 1000
        self._margin_s = svc.config.margin_ms / 1000
        self._admission = Admission(
            svc.config.max_in_flight, svc.config.terminal_rate_per_s, svc.config.terminal_burst
        )

    def _budget(self, context: grpc.aio.ServicerContext) -> Budget:
        return Budget.start(context.time_remaining(), self._max_budget_s, self._margin_s)

    async def _guarded(
        self,
        context: grpc.aio.ServicerContext,
        coro,
        *,
        shed: bool = True,
        rate_terminal: str | None = None,
    ):
        """Admit, run ``coro``, map errors. A shed request's coroutine is closed unstarted, so
        nothing it would have done (idempotency claim, store writes, network) happens."""
        admitted = False
        try:
            if shed:
                self._admission.in_flight.acquire()
                admitted = True
            if rate_terminal is not None and _well_formed_id(rate_terminal):
                # Malformed ids get no bucket: the operation refuses them anyway.
                self._admission.rates.take(rate_terminal)
            return await coro
        except ApiError as exc:
            await context.abort_with_status(exc.to_status())
        except StoreError:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "state store unavailable")
        finally:
            if admitted:
                self._admission.in_flight.release()
            coro.close()  # no-op once it ran; stops a never-awaited warning when shed

    async def Authorize(self, request, context):
        ctx = AuthContext(request=request, budget=self._budget(context), started=time.monotonic())
        return await self._guarded(
            context, self._pipeline.run(ctx), rate_terminal=request.terminal_id
        )

    async def Capture(self, request, context):
        return await self._guarded(
            context,
            capture(self._svc, request, self._budget(context)),
            rate_terminal=request.terminal_id,
        )

    async def Void(self, request, context):
        return await self._guarded(
            context,
            void(self._svc, request, self._budget(context)),
            rate_terminal=request.terminal_id,
        )

    async def Refund(self, request, context):
        return await self._guarded(
            context,
            refund(self._svc, request, self._budget(context)),
            rate_terminal=request.terminal_id,
        )

    async def GetTransaction(self, request, context):
        return await self._guarded(context, get_transaction(self._svc, request))

    async def Echo(self, request, context):
        async def echo() -> terminal_pb2.EchoResponse:
            validation.identifier(request.terminal_id, "terminal_id")
            self._svc.registry.authenticate(request.terminal_id)
            if len(request.message) > 256:
                raise validation.InvalidArgument("message", "at most 256 characters")
            return terminal_pb2.EchoResponse(
                message=request.message,
                switch_id=self._svc.config.id,
                server_time_ms=int(time.time() * 1000),
            )

        return await self._guarded(context, echo(), shed=False)


def _well_formed_id(value: str) -> bool:
    try:
        validation.identifier(value, "terminal_id")
    except ApiError:
        return False
    return True
