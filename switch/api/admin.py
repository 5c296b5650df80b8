"""AdminService: the operators' API (terminal registry and revocation, store-and-forward
queue and dead letters, circuit breakers, the key-injection facility's device registrations)
on its own port with its own credentials.

With ``[switch] tls`` the port requires a client certificate of the admin CA (``payswitch.tls``),
so a terminal's certificate fails at the handshake; each call also checks that the peer's
certificate carries an admin identity. Without TLS (in-process tests only) it is plaintext.
Features built elsewhere (``saf``, ``breakers``) are optional: when absent their RPCs answer
FAILED_PRECONDITION "not available". Nothing here returns card data: SAF items carry
transaction ids only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import grpc

from payswitch import tls
from payswitch.logs import get as get_logger
from payswitch.v1 import admin_pb2, admin_pb2_grpc
from switch.core.registry import PermissionDenied, TerminalRegistry, TerminalStatus
from switch.domain.devices import DeviceElsewhere
from switch.domain.errors import StoreError
from switch.domain.risk import RiskReview
from switch.domain.saf import SafItem
from switch.recovery.saf import SafQueue
from switch.routing.breakers import Breakers, CircuitSnapshot
from switch.store.devices import DeviceStore
from switch.store.risk import RiskStore
from switch.wire import validation
from switch.wire.errors import ApiError, FailedPrecondition, InvalidArgument, NotFound

R = TypeVar("R")
T = TypeVar("T")

_log = get_logger("switch.api.admin")

_IKID = re.compile(r"[0-9A-Fa-f]{16}")
MAX_REASON = 200
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _ms(seconds: float) -> int:
    return int(seconds * 1000) if seconds else 0


def terminal_entry(status: TerminalStatus) -> admin_pb2.TerminalEntry:
    entry = admin_pb2.TerminalEntry(
        terminal_id=status.identity.terminal_id, merchant_id=status.identity.merchant.id
    )
    if status.revocation is not None:
        entry.revoked = True
        entry.revoke_reason = status.revocation.reason
        entry.revoked_at_ms = _ms(status.revocation.revoked_at)
    return entry


def saf_item(item: SafItem) -> admin_pb2.SafItem:
    kind = getattr(item.kind, "value", item.kind)
    return admin_pb2.SafItem(
        id=item.id,
        kind=str(kind),
        transaction_id=item.transaction_id,
        attempts=int(item.attempts),
        created_at_ms=_ms(item.created_at),
        next_attempt_at_ms=_ms(item.next_attempt_at),
        last_error=item.last_error,
        dead=bool(item.dead),
    )


_VERDICTS = {
    admin_pb2.RISK_VERDICT_FRAUD: "fraud",
    admin_pb2.RISK_VERDICT_FALSE_POSITIVE: "false_positive",
}


def risk_review(r: RiskReview) -> admin_pb2.RiskReview:
    return admin_pb2.RiskReview(
        transaction_id=r.tx_id,
        card_token=r.card_token,
        score=r.score,
        reasons=list(r.reasons),
        created_at_ms=_ms(r.created_at),
    )


def circuit(snap: CircuitSnapshot) -> admin_pb2.Circuit:
    return admin_pb2.Circuit(
        acquirer_id=snap.acquirer_id,
        state=snap.state,
        consecutive_failures=int(snap.consecutive_failures),
        error_rate=float(snap.error_rate),
        opened_at_ms=_ms(snap.opened_at),
    )


class AdminService(admin_pb2_grpc.AdminServiceServicer):
    def __init__(
        self,
        registry: TerminalRegistry,
        saf: SafQueue | None = None,
        breakers: Breakers | None = None,
        *,
        tls_on: bool = False,
        devices: DeviceStore | None = None,
        risk: RiskStore | None = None,
    ) -> None:
        self._registry = registry
        self._saf = saf
        self._breakers = breakers
        self._tls = tls_on
        self._devices = devices
        self._risk = risk

    async def _run(
        self, context: grpc.aio.ServicerContext[Any, Any], rpc: str, coro: Coroutine[Any, Any, R]
    ) -> R:
        try:
            if self._tls:
                operator = tls.admin_identity(context.auth_context())
                if operator is None:
                    raise PermissionDenied("not an admin certificate")
            return await coro
        except ApiError as exc:
            await context.abort_with_status(exc.to_status())
            raise AssertionError("abort_with_status returned") from None  # it always raises
        except StoreError:
            _log.error("admin_store_failure", rpc=rpc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "state store unavailable")
            raise AssertionError("abort returned") from None  # it always raises
        finally:
            coro.close()

    def _terminal(self, terminal_id: str) -> admin_pb2.TerminalEntry:
        return next(
            terminal_entry(s)
            for s in self._registry.terminals()
            if s.identity.terminal_id == terminal_id
        )

    async def ListTerminals(
        self, request: admin_pb2.ListTerminalsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> admin_pb2.ListTerminalsResponse:
        async def run() -> admin_pb2.ListTerminalsResponse:
            entries = [terminal_entry(s) for s in self._registry.terminals()]
            return admin_pb2.ListTerminalsResponse(terminals=entries)

        return await self._run(context, "ListTerminals", run())

    async def RevokeTerminal(
        self, request: admin_pb2.RevokeTerminalRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> admin_pb2.RevokeTerminalResponse:
        async def run() -> admin_pb2.RevokeTerminalResponse:
            validation.identifier(request.terminal_id, "terminal_id")
            if len(request.reason) > MAX_REASON:
                raise InvalidArgument("reason", f"at most {MAX_REASON} characters")
            await self._registry.revoke(request.terminal_id, request.reason)
            _log.warning("terminal_revoked", terminal=request.terminal_id)
            return admin_pb2.RevokeTerminalResponse(terminal=self._terminal(request.terminal_id))

        return await self._run(context, "RevokeTerminal", run())

    async def ReinstateTerminal(
        self,
        request: admin_pb2.ReinstateTerminalRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> admin_pb2.ReinstateTerminalResponse:
        async def run() -> admin_pb2.ReinstateTerminalResponse:
            validation.identifier(request.terminal_id, "terminal_id")
            existed = await self._registry.reinstate(request.terminal_id)
            _log.warning("terminal_reinstated", terminal=request.terminal_id, was=existed)
            return admin_pb2.ReinstateTerminalResponse(
                terminal=self._terminal(request.terminal_id), was_revoked=existed
            )

        return await self._run(context, "ReinstateTerminal", run())

    async def RegisterDevice(
        self,
        request: admin_pb2.RegisterDeviceRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> admin_pb2.RegisterDeviceResponse:
        async def run() -> admin_pb2.RegisterDeviceResponse:
            devices = self._need(self._devices, "device registration")
            if _IKID.fullmatch(request.ikid) is None:
                raise InvalidArgument("ikid", "must be 16 hex digits")
            validation.identifier(request.terminal_id, "terminal_id")
            known = {s.identity.terminal_id for s in self._registry.terminals()}
            if request.terminal_id not in known:
                raise InvalidArgument("terminal_id", "not a terminal of this switch")
            ikid = request.ikid.lower()
            try:
                created = await devices.register_device(ikid, request.terminal_id, time.time())
            except DeviceElsewhere:
                raise FailedPrecondition("device is registered to another terminal") from None
            _log.warning(
                "device_registered", terminal=request.terminal_id, ikid=ikid, created=created
            )
            return admin_pb2.RegisterDeviceResponse(created=created)

        return await self._run(context, "RegisterDevice", run())

    def _need(self, feature: T | None, what: str) -> T:
        if feature is None:
            raise FailedPrecondition(f"{what} not available")
        return feature

    async def ListSafItems(
        self, request: admin_pb2.ListSafItemsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> admin_pb2.ListSafItemsResponse:
        async def run() -> admin_pb2.ListSafItemsResponse:
            saf = self._need(self._saf, "store-and-forward")
            limit = request.limit or DEFAULT_LIMIT
            if not 1 <= limit <= MAX_LIMIT:
                raise InvalidArgument("limit", f"must be 1 to {MAX_LIMIT}")
            items = await saf.list_items(request.dead_letters, limit)
            return admin_pb2.ListSafItemsResponse(items=[saf_item(i) for i in items])

        return await self._run(context, "ListSafItems", run())

    async def ReplayDeadLetter(
        self,
        request: admin_pb2.ReplayDeadLetterRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> admin_pb2.ReplayDeadLetterResponse:
        async def run() -> admin_pb2.ReplayDeadLetterResponse:
            saf = self._need(self._saf, "store-and-forward")
            if not request.item_id:
                raise InvalidArgument("item_id", "is required")
            try:
                item = await saf.replay(request.item_id)
            except KeyError:
                raise NotFound("no such store-and-forward item") from None
            except ValueError:
                raise FailedPrecondition("item is not a dead letter") from None
            _log.warning("dead_letter_replayed", item=request.item_id)
            return admin_pb2.ReplayDeadLetterResponse(item=saf_item(item))

        return await self._run(context, "ReplayDeadLetter", run())

    async def ListCircuits(
        self, request: admin_pb2.ListCircuitsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> admin_pb2.ListCircuitsResponse:
        async def run() -> admin_pb2.ListCircuitsResponse:
            breakers = self._need(self._breakers, "circuit breakers")
            snaps = breakers.snapshots()
            return admin_pb2.ListCircuitsResponse(circuits=[circuit(s) for s in snaps])

        return await self._run(context, "ListCircuits", run())

    async def ListRiskReviews(
        self,
        request: admin_pb2.ListRiskReviewsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> admin_pb2.ListRiskReviewsResponse:
        async def run() -> admin_pb2.ListRiskReviewsResponse:
            risk = self._need(self._risk, "risk reviews")
            limit = request.limit or DEFAULT_LIMIT
            if not 1 <= limit <= MAX_LIMIT:
                raise InvalidArgument("limit", f"must be 1 to {MAX_LIMIT}")
            reviews = await risk.risk_reviews(limit)
            return admin_pb2.ListRiskReviewsResponse(reviews=[risk_review(r) for r in reviews])

        return await self._run(context, "ListRiskReviews", run())

    async def ResolveRiskReview(
        self,
        request: admin_pb2.ResolveRiskReviewRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> admin_pb2.ResolveRiskReviewResponse:
        async def run() -> admin_pb2.ResolveRiskReviewResponse:
            risk = self._need(self._risk, "risk reviews")
            validation.transaction_id(request.transaction_id, "transaction_id")
            verdict = _VERDICTS.get(request.verdict)
            if verdict is None:
                raise InvalidArgument("verdict", "must be FRAUD or FALSE_POSITIVE")
            done = await risk.resolve_risk_review(request.transaction_id, verdict, time.time())
            if done is None:
                raise NotFound("no open risk review for this transaction")
            review, listed = done
            _log.warning("risk_review_resolved", tx=review.tx_id, verdict=verdict, list=listed.list)
            return admin_pb2.ResolveRiskReviewResponse(review=risk_review(review), list=listed.list)

        return await self._run(context, "ResolveRiskReview", run())
