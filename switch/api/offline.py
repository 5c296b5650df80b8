"""``OfflineService`` (``proto/payswitch/v1/offline.proto``): a terminal's journal upload, its
resume point and trust, and allowance grants passed to the issuer.

SyncOffline settles entry by entry as they stream in (``switch.backoffice.offline.settle``)
and moves the terminal's upload mark after each, so a cut upload leaves everything before the
cut settled and the next upload resumes after it; an entry at or below the mark is counted as
repeated and not settled again (settling it again would change nothing either). A malformed
entry ends the upload with INVALID_ARGUMENT naming the field; entries before it stay settled.
With mTLS the client certificate must name the uploading terminal (PERMISSION_DENIED).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc

from payswitch import tls
from payswitch.logs import get as get_logger
from payswitch.offline.formats import FormatError, Signed
from payswitch.offline.trustbook import TrustBook
from payswitch.offline.wire import Limits, trust_to_proto
from payswitch.v1 import offline_pb2, offline_pb2_grpc
from payswitch.world.topology import Topology
from switch.backoffice.offline.issuers import IssuerLink, IssuerUnavailable, UnknownIssuer
from switch.backoffice.offline.sales import OfflineSales
from switch.backoffice.offline.settle import OfflineSettlement, Payment, Upload
from switch.domain.errors import StoreError
from switch.recovery.saf import SafQueue
from switch.store.base import Store
from switch.wire.errors import ApiError, InvalidArgument

Grant = Callable[
    [offline_pb2.GrantOfflineAllowanceRequest], Awaitable[offline_pb2.GrantOfflineAllowanceResponse]
]


_log = get_logger("switch.api.offline")
TRUST_FILE = "offline-trust.json"


class PermissionDenied(ApiError):
    code = grpc.StatusCode.PERMISSION_DENIED


def _journal_key(terminal_id: str, journal_id: str) -> str:
    """The upload mark's key: one count per journal of a terminal."""
    if not journal_id or len(journal_id) > 64 or not journal_id.isalnum():
        raise InvalidArgument("journal_id", "required: 1-64 letters and digits")
    return f"{terminal_id}/{journal_id}"


def _signed(body: bytes, sig: bytes, field: str) -> Signed:
    try:
        return Signed(bytes(body), bytes(sig))
    except FormatError:
        raise InvalidArgument(field, "must be 64 bytes r || s") from None


class OfflineApi(offline_pb2_grpc.OfflineServiceServicer):
    def __init__(
        self,
        settlement: OfflineSettlement,
        limits: Limits,
        *,
        tls_on: bool,
        grant: Grant | None = None,
        trust_file: Path | None = None,
        merchants: dict[str, str] | None = None,
    ) -> None:
        self.settlement = settlement
        # terminal id -> its merchant (the topology's): an upload naming another is refused
        self.merchants = merchants
        self.trust_file = trust_file
        self._trust_mtime = 0.0
        self.store = settlement.store
        self.limits = limits
        self.tls_on = tls_on
        self.grant = grant

    async def refresh(self) -> None:
        """Re-read the trust file when it changed (rotations and revocations made by
        ``payswitch-offline`` while the switch runs); off the event loop."""
        path = self.trust_file
        if path is None:
            return

        def read() -> TrustBook | None:
            if not path.exists():  # no trust yet: every spend fails its key check (closed)
                return None
            mtime = path.stat().st_mtime
            if mtime == self._trust_mtime:
                return None
            self._trust_mtime = mtime
            return TrustBook.load(path)

        book = await asyncio.to_thread(read)
        if book is not None:
            self.settlement.book = book

    def _trust(self) -> offline_pb2.OfflineTrust:
        return trust_to_proto(self.settlement.book.for_terminals(), self.limits)

    def _check_caller(self, context: grpc.aio.ServicerContext, terminal_id: str) -> None:
        if self.tls_on and tls.terminal_identity(context.auth_context()) != terminal_id:
            raise PermissionDenied("the client certificate names another terminal")

    async def _abort(self, context: grpc.aio.ServicerContext, exc: Exception) -> None:
        if isinstance(exc, ApiError):
            await context.abort_with_status(exc.to_status())
        if isinstance(exc, IssuerUnavailable):
            await context.abort(grpc.StatusCode.UNAVAILABLE, "issuer unavailable: sync again")
        await context.abort(grpc.StatusCode.UNAVAILABLE, "state store unavailable")

    async def SyncOffline(
        self,
        request_iterator: AsyncIterator[offline_pb2.SyncOfflineRequest],
        context: grpc.aio.ServicerContext,
    ) -> offline_pb2.SyncOfflineResponse:
        try:
            await self.refresh()
            return await self._sync(request_iterator, context)
        except (ApiError, StoreError, IssuerUnavailable) as exc:
            await self._abort(context, exc)
            raise AssertionError("abort returned") from None

    async def _sync(
        self,
        requests: AsyncIterator[offline_pb2.SyncOfflineRequest],
        context: grpc.aio.ServicerContext,
    ) -> offline_pb2.SyncOfflineResponse:
        terminal = merchant = journal = ""
        mark = accepted = flagged = repeated = 0
        async for req in requests:
            if not terminal:
                if not req.terminal_id:
                    raise InvalidArgument("terminal_id", "required")
                if not req.merchant_id:
                    raise InvalidArgument("merchant_id", "required")
                terminal, merchant = req.terminal_id, req.merchant_id
                journal = _journal_key(terminal, req.journal_id)
                self._check_caller(context, terminal)
                if self.merchants is not None and self.merchants.get(terminal) != merchant:
                    raise PermissionDenied("the terminal does not belong to that merchant")
                mark = await self.store.offline_upload_mark(journal)
            elif (req.terminal_id, req.merchant_id) != (terminal, merchant) or _journal_key(
                terminal, req.journal_id
            ) != journal:
                raise InvalidArgument("terminal_id", "changed within one upload")
            if req.seq == 0:
                raise InvalidArgument("seq", "must be > 0")
            if req.seq <= mark:
                repeated += 1
                continue
            up = Upload(
                terminal, merchant, req.seq,
                _signed(req.allowance, req.allowance_signature, "allowance_signature"),
                _signed(req.spend, req.spend_signature, "spend_signature"),
                req.trust_version,
            )  # fmt: skip
            done = await self.settlement.settle(up)
            if done.problems:
                flagged += 1
            elif done.repeated:
                repeated += 1
            else:
                accepted += 1
            mark = await self.store.advance_offline_upload_mark(journal, req.seq)
        return offline_pb2.SyncOfflineResponse(
            settled_through=mark,
            accepted=accepted,
            flagged=flagged,
            repeated=repeated,
            trust=self._trust(),
        )

    async def GetOfflineStatus(
        self, request: offline_pb2.GetOfflineStatusRequest, context: grpc.aio.ServicerContext
    ) -> offline_pb2.GetOfflineStatusResponse:
        try:
            if not request.terminal_id:
                raise InvalidArgument("terminal_id", "required")
            self._check_caller(context, request.terminal_id)
            await self.refresh()
            key = _journal_key(request.terminal_id, request.journal_id)
            mark = await self.store.offline_upload_mark(key)
        except (ApiError, StoreError) as exc:
            await self._abort(context, exc)
            raise AssertionError("abort returned") from None
        return offline_pb2.GetOfflineStatusResponse(settled_through=mark, trust=self._trust())

    async def GrantOfflineAllowance(
        self,
        request: offline_pb2.GrantOfflineAllowanceRequest,
        context: grpc.aio.ServicerContext,
    ) -> offline_pb2.GrantOfflineAllowanceResponse:
        if self.grant is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "not available: no issuer link configured"
            )
            raise AssertionError("abort returned")
        for field in ("issuer", "account_id", "card_token", "currency"):
            if not getattr(request, field):
                await context.abort_with_status(InvalidArgument(field, "required").to_status())
        if len(request.device_public_key) != 65:
            await context.abort_with_status(
                InvalidArgument("device_public_key", "must be 65 bytes").to_status()
            )
        try:
            return await self.grant(request)
        except UnknownIssuer:
            await context.abort_with_status(
                InvalidArgument("issuer", "not an issuer of this network").to_status()
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.INVALID_ARGUMENT:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.details() or "")
            await context.abort(grpc.StatusCode.UNAVAILABLE, "issuer unavailable")
        raise AssertionError("abort returned")


async def _record_only(p: Payment) -> None:
    """An accepted spend's log line (no card data: the allowance, counter and amount)."""
    _log.info(
        "offline_spend_accepted",
        allowance_id=p.allowance_id,
        counter=p.counter,
        amount=p.amount,
        currency=p.currency,
        merchant_id=p.merchant_id,
        terminal_id=p.terminal_id,
        beyond_allowance=p.beyond_allowance,
    )


def build(
    store: Store,
    run_dir: Path,
    *,
    tls_on: bool,
    topology: Topology | None = None,
    network_credentials: grpc.ChannelCredentials | None = None,
    saf: SafQueue | None = None,
) -> OfflineApi:
    """The OfflineService over the trust file ``<run_dir>/offline-trust.json``
    (``payswitch-offline keys`` makes it; read again whenever it changes). Until it exists the
    trust is empty: terminals get no keys, so take no offline sale, and any upload fails its
    key check (a merchant case, nothing paid). Accepted spends go to their issuers as
    advices through ``saf`` (the switch's store-and-forward queue), so an upload never waits
    for an issuer."""
    path = run_dir / TRUST_FILE
    if topology is None:  # no network to post to: record only (tests of the API alone)
        settlement = OfflineSettlement(store, TrustBook(), _record_only)
        return OfflineApi(settlement, Limits(), tls_on=tls_on, trust_file=path)
    if saf is None:
        raise ValueError("offline payments on a network need the switch's SAF queue")
    link = IssuerLink(topology, network_credentials)
    sales = OfflineSales(store, topology, saf, link.pay)

    async def pay(p: Payment) -> None:
        await sales.record(p)  # the sale and its advice, durable before the mark moves
        await _record_only(p)

    settlement = OfflineSettlement(store, TrustBook(), pay)
    merchants = {t.id: t.merchant for t in topology.terminals}
    return OfflineApi(
        settlement, Limits(), tls_on=tls_on, trust_file=path, grant=link.grant, merchants=merchants
    )
