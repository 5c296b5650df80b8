"""TerminalService: the gRPC face of the switch. Each RPC starts the request's budget from
the caller's deadline, runs its operation, and turns API errors into gRPC statuses.

Before any operation runs, admission control may shed it (RESOURCE_EXHAUSTED) above the
concurrency limit, at once or after a short wait that fits its deadline
(``switch.core.concurrency``), for every RPC but Echo (liveness). Each RPC's time, and for
Authorize the switch's own part of it (less the wait for the acquirer), feeds the limit.
Every RPC is then admitted once (``switch.core.admission``; Authorize in the pipeline's
"admit" stage, the others here): with mTLS (``[switch] tls``) the client certificate's
terminal id must be the request's, a revoked terminal is refused, and the money-moving RPCs
spend a token of the terminal's rate; all before any state is touched. Each answer is counted in
``payswitch_requests_total{rpc,code}`` (ISO code, "OK" for answers without one, the gRPC
status name for errors); label children are cached, so counting costs one ``inc``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import grpc

from payswitch import codes, tls
from payswitch.v1 import terminal_pb2, terminal_pb2_grpc
from switch.core import metrics
from switch.core.budget import Budget
from switch.domain.errors import StoreError
from switch.operations.capture import capture
from switch.operations.close_batch import close_batch
from switch.operations.dcc import quote_dcc
from switch.operations.lookup import get_transaction
from switch.operations.refund import refund
from switch.operations.void import void
from switch.pipeline import Pipeline
from switch.pipeline.context import AuthContext
from switch.services import Services
from switch.wire.errors import ApiError, InvalidArgument

R = TypeVar("R")


class _RequestCounter:
    """``requests.labels(rpc, code)`` children, cached per metrics registry."""

    def __init__(self) -> None:
        self._metrics: metrics.Metrics | None = None
        self._children: dict[tuple[str, str], object] = {}

    def inc(self, rpc: str, code: str) -> None:
        m = metrics.get()
        if m is not self._metrics:
            self._metrics, self._children = m, {}
        child = self._children.get((rpc, code))
        if child is None:
            child = self._children[(rpc, code)] = m.requests.labels(rpc, code)
        child.inc()  # type: ignore[attr-defined]


def address_of(peer: str | None) -> str:
    """The host part of a gRPC peer ("ipv4:127.0.0.1:5000" -> "127.0.0.1", "ipv6:[::1]:5000"
    -> "::1"); "" when there is none (a Unix socket, an in-process test)."""
    if not peer:
        return ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return ""


def _answer_code(response: object) -> str:
    value = getattr(response, "response_code", 0)
    return codes.to_iso(value) if value else "OK"


class TerminalService(terminal_pb2_grpc.TerminalServiceServicer):
    def __init__(self, svc: Services, pipeline: Pipeline) -> None:
        self._svc = svc
        self._pipeline = pipeline
        self._gate = svc.gate
        self._count = _RequestCounter()
        self._max_budget_s = svc.config.max_budget_ms / 1000
        self._margin_s = svc.config.margin_ms / 1000

    def _budget(self, context: grpc.aio.ServicerContext) -> Budget:
        return Budget.start(context.time_remaining(), self._max_budget_s, self._margin_s)

    def _peer(self, context: grpc.aio.ServicerContext) -> str | None:
        """The client certificate's terminal id (mTLS), None without TLS."""
        return tls.terminal_identity(context.auth_context()) if self._gate.tls else None

    async def _guarded(
        self,
        context: grpc.aio.ServicerContext,
        coro: Coroutine[Any, Any, R],
        rpc: str,
        terminal_id: str,
        *,
        shed: bool = True,
        admit: bool = True,
        rate: bool = False,
        downstream: Callable[[], float] | None = None,
        outlives: list[asyncio.Future[Any]] | None = None,
    ) -> R:
        """Shed above the in-flight bound, admit the terminal (once: the authorization
        pipeline admits in its own "admit" stage instead, ``admit=False``), run ``coro``, map
        errors. A shed or refused request's coroutine is closed unstarted, so nothing it would
        have done (idempotency claim, store writes, network) happens. ``downstream`` tells
        how long the RPC waited for the acquirer (the limit samples the rest). ``outlives``:
        where ``coro`` leaves work that goes on after a cancelled call (the shielded
        authorization): its slot is given back when that work ends, not when the call does."""
        admitted = False
        started = 0.0
        try:
            if shed:
                left = context.time_remaining()
                left = self._max_budget_s if left is None else min(left, self._max_budget_s)
                await self._gate.in_flight.enter(left - self._margin_s)
                admitted = True
                started = time.perf_counter()
            if admit:
                self._gate.admit(
                    terminal_id, self._peer(context), rate=rate, connection=context.peer()
                )
            response = await coro
            self._count.inc(rpc, _answer_code(response))
            return response
        except ApiError as exc:
            self._count.inc(rpc, exc.code.name)
            await context.abort_with_status(exc.to_status())
            raise AssertionError("abort_with_status returned") from None  # it always raises
        except StoreError:
            self._count.inc(rpc, grpc.StatusCode.UNAVAILABLE.name)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "state store unavailable")
            raise AssertionError("abort returned") from None  # it always raises
        finally:
            if admitted:
                still = next((f for f in outlives or () if not f.done()), None)
                if still is None:
                    self._release(started, downstream)
                else:
                    still.add_done_callback(lambda _f: self._release(started, downstream))
            coro.close()  # no-op once it ran; stops a never-awaited warning when shed

    def _release(self, started: float, downstream: Callable[[], float] | None) -> None:
        total = time.perf_counter() - started
        own = total - downstream() if downstream is not None else None
        self._gate.in_flight.release(total, own)

    async def Authorize(
        self, request: terminal_pb2.AuthorizeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> terminal_pb2.AuthorizeResponse:
        ctx = AuthContext(
            request=request,
            budget=self._budget(context),
            started=time.monotonic(),
            peer=self._peer(context),
            address=address_of(context.peer()),
        )
        running: list[asyncio.Future[Any]] = []
        return await self._guarded(
            context,
            self._authorize(ctx, running),
            "Authorize",
            request.terminal_id,
            admit=False,
            downstream=lambda: ctx.downstream_s,
            outlives=running,
        )

    async def _authorize(
        self, ctx: AuthContext, running: list[asyncio.Future[Any]]
    ) -> terminal_pb2.AuthorizeResponse:
        """The pipeline, shielded from the caller going away: a cancelled RPC (its deadline
        passed, the terminal hung up) must not stop the request between its key's claim and
        its answer, leaving the key held in this process where every retry waits on it and is
        answered ABORTED (campaign seeds 3037 and 3042). The pipeline keeps to its own budget
        and records its answer under the key, for the retry to replay. It keeps its in-flight
        slot until it ends (``running``)."""
        work = asyncio.ensure_future(self._pipeline.run(ctx))
        running.append(work)
        return await asyncio.shield(work)

    async def Capture(
        self, request: terminal_pb2.CaptureRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> terminal_pb2.CaptureResponse:
        return await self._guarded(
            context,
            capture(self._svc, request, self._budget(context)),
            "Capture",
            request.terminal_id,
            rate=True,
        )

    async def Void(
        self, request: terminal_pb2.VoidRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> terminal_pb2.VoidResponse:
        return await self._guarded(
            context,
            void(self._svc, request, self._budget(context)),
            "Void",
            request.terminal_id,
            rate=True,
        )

    async def Refund(
        self, request: terminal_pb2.RefundRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> terminal_pb2.RefundResponse:
        return await self._guarded(
            context,
            refund(self._svc, request, self._budget(context)),
            "Refund",
            request.terminal_id,
            rate=True,
        )

    async def CloseBatch(
        self, request: terminal_pb2.CloseBatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> terminal_pb2.CloseBatchResponse:
        return await self._guarded(
            context,
            close_batch(self._svc, request, self._budget(context)),
            "CloseBatch",
            request.terminal_id,
            rate=True,
        )

    async def GetTransaction(
        self,
        request: terminal_pb2.GetTransactionRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> terminal_pb2.GetTransactionResponse:
        return await self._guarded(
            context, get_transaction(self._svc, request), "GetTransaction", request.terminal_id
        )

    async def QuoteDcc(
        self, request: terminal_pb2.QuoteDccRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> terminal_pb2.QuoteDccResponse:
        async def quote() -> terminal_pb2.QuoteDccResponse:
            return quote_dcc(self._svc, request)

        return await self._guarded(context, quote(), "QuoteDcc", request.terminal_id, rate=True)

    async def Echo(
        self, request: terminal_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> terminal_pb2.EchoResponse:
        async def echo() -> terminal_pb2.EchoResponse:
            if len(request.message) > 256:
                raise InvalidArgument("message", "at most 256 characters")
            return terminal_pb2.EchoResponse(
                message=request.message,
                switch_id=self._svc.config.id,
                server_time_ms=int(time.time() * 1000),
            )

        return await self._guarded(context, echo(), "Echo", request.terminal_id, shed=False)
