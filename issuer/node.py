"""Issuer node: the cardholder's bank. Decides authorizations and keeps the books.

Cards (PAN, expiry, status, limits) stay in memory, loaded from the topology; the books in
SQLite (``issuer.books``) hold accounts and holds keyed by account id and RRN only. The
books file is ``<books_dir>/<issuer id>.db`` and outlives the process.

An authorization that carries a PIN block, a CVV2 or EMV data for a card on file is checked
in the issuer's own HSM first (``issuer.crypto``: one HSM job, 55 for a wrong PIN, 05
for a bad CVV2 or ARQC); a failure is recorded as a decline like any other, so no hold is
placed and a repeat of the RRN gets the same answer. With a verified ARQC the answer carries
the ARPC for its response code; the books keep it, so a repeat gets the same ARPC. An HSM
outage is answered 96 and not recorded. The node opens its HSM at start (keys checked, PVVs
enrolled) and refuses to start without it.

ARQC replay: a verified ARQC's ATC goes to the books' per-card history (``payswitch.atc``); a
counter used already or too far behind is declined 59 with no hold and no ARPC. The node also
publishes its stand-in file for the network (``issuer.stip_publisher``).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import grpc

from hsm.errors import HsmError
from issuer import back_office
from issuer.bookkeeper import Bookkeeper
from issuer.books_fx import Converted
from issuer.books_settlement import IssuerRules
from issuer.crypto import IssuerCrypto, Verdict
from issuer.offline_books import OfflineBooks
from issuer.offline_service import OfflineIssuer
from issuer.stip_publisher import StipPublisher
from network.hop import Hop
from payswitch import fx
from payswitch.atc import AtcUse
from payswitch.logs import get as get_logger
from payswitch.money import is_currency
from payswitch.v1 import (
    common_pb2,
    network_pb2,
    network_pb2_grpc,
    offline_pb2,
    offline_pb2_grpc,
    settlement_pb2_grpc,
)
from payswitch.world.topology import IssuerConfig, Topology

SYSTEM_MALFUNCTION = common_pb2.RESPONSE_CODE_SYSTEM_MALFUNCTION

_log = get_logger("issuer.node")


def _today_utc() -> date:
    return datetime.now(UTC).date()


def _converted(c: network_pb2.Conversion) -> Converted:
    """The scheme's conversion as the books take it (checked by ``_check_conversion``)."""
    return Converted(
        c.billing_amount.minor_units, c.billing_amount.currency, fx.parse_rate(c.rate), c.rate_table
    )


def _conversion_pb(c: Converted) -> network_pb2.Conversion:
    return network_pb2.Conversion(
        billing_amount=common_pb2.Money(minor_units=c.billing_minor, currency=c.billing_currency),
        rate=fx.format_rate(c.rate),
        rate_table=c.rate_table,
    )


def _conversion_problem(c: network_pb2.Conversion, amount_needed: bool) -> str | None:
    """What is wrong with a conversion on the wire (the field), or None."""
    try:
        fx.parse_rate(c.rate)
    except fx.FxError:
        return "conversion.rate"
    if not is_currency(c.billing_amount.currency):
        return "conversion.billing_amount.currency"
    if amount_needed and c.billing_amount.minor_units <= 0:
        return "conversion.billing_amount.minor_units"
    return None


def books_path(books_dir: str | Path, issuer_id: str) -> Path:
    """Where an issuer keeps its books."""
    return Path(books_dir) / f"{issuer_id}.db"


class IssuerServicer(network_pb2_grpc.IssuerServiceServicer):
    def __init__(
        self,
        config: IssuerConfig,
        books: Bookkeeper,
        hop: Hop,
        crypto: IssuerCrypto,
        today: Callable[[], date] = _today_utc,
    ) -> None:
        self._id = config.id
        self._cards = {c.pan: c for c in config.cards}
        self._books = books
        self._hop = hop
        self._crypto = crypto
        self._today = today

    async def _require(self, context: grpc.aio.ServicerContext, value: str, field: str) -> None:
        if not value:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{field} is required")

    async def _check(
        self, context: grpc.aio.ServicerContext, c: network_pb2.Conversion, amount: bool
    ) -> None:
        field = _conversion_problem(c, amount)
        if field is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{field} is not valid")

    async def Authorize(
        self, request: network_pb2.NetworkAuthorization, context: grpc.aio.ServicerContext
    ) -> network_pb2.NetworkAuthorizationResult:
        await self._require(context, request.rrn, "rrn")
        if request.HasField("conversion"):
            await self._check(context, request.conversion, True)

        async def act(_timeout: float) -> network_pb2.NetworkAuthorizationResult:
            card = self._cards.get(request.pan)
            verdict = Verdict()
            if card is not None and self._crypto.wanted(request):
                try:
                    verdict = await self._crypto.check(request, card)
                except HsmError:
                    return answer(SYSTEM_MALFUNCTION)  # fail closed; nothing recorded
            atc = None
            if verdict.arqc_verified and card is not None:
                atc = AtcUse(self._crypto.atc_key(card.pan, verdict.psn), verdict.atc)
            decision = await self._books.authorize(
                request.rrn,
                card,
                request.amount.minor_units,
                request.amount.currency,
                request.expiry,
                self._today(),
                verdict=verdict.decline,
                arpc=verdict.arpc,
                atc=atc,
                conversion=_converted(request.conversion)
                if request.HasField("conversion")
                else None,
            )
            if decision.atc_refused:
                _log.warning("arqc_replay_refused", rrn=request.rrn, reason=decision.atc_refused)
            arpc = decision.arpc
            if (
                decision.fresh
                and verdict.arqc_verified
                and not arpc
                and card is not None
                and not decision.atc_refused  # a replayed cryptogram gets no ARPC
            ):
                # The books answered another code than the checks expected (51, 61, ...): the
                # card still gets an ARPC, for the code it is actually answered with.
                try:
                    made = await self._crypto.arpc(request, card, decision.response_code)
                    arpc = await self._books.set_arpc(request.rrn, made)
                except HsmError:
                    arpc = b""  # the decline stands; the card sees no issuer authentication
            return answer(decision.response_code, decision.auth_code, arpc)

        def answer(
            code: common_pb2.ResponseCode, auth_code: str = "", arpc: bytes = b""
        ) -> network_pb2.NetworkAuthorizationResult:
            return network_pb2.NetworkAuthorizationResult(
                rrn=request.rrn,
                stan=request.stan,
                response_code=code,
                auth_code=auth_code,
                responder=self._id,
                arpc=arpc,
            )

        return await self._hop.run(context, "authorize", request.rrn, act, answer)

    def _advice(
        self, rrn: str
    ) -> Callable[[common_pb2.ResponseCode], network_pb2.NetworkAdviceResult]:
        def answer(code: common_pb2.ResponseCode) -> network_pb2.NetworkAdviceResult:
            return network_pb2.NetworkAdviceResult(rrn=rrn, response_code=code, responder=self._id)

        return answer

    async def Reverse(
        self, request: network_pb2.NetworkReversal, context: grpc.aio.ServicerContext
    ) -> network_pb2.NetworkAdviceResult:
        await self._require(context, request.original_rrn, "original_rrn")
        answer = self._advice(request.original_rrn)

        async def act(_timeout: float) -> network_pb2.NetworkAdviceResult:
            return answer(await self._books.reverse(request.original_rrn))

        return await self._hop.run(context, "reverse", request.original_rrn, act, answer)

    async def Capture(
        self, request: network_pb2.NetworkCapture, context: grpc.aio.ServicerContext
    ) -> network_pb2.NetworkAdviceResult:
        await self._require(context, request.original_rrn, "original_rrn")
        answer = self._advice(request.original_rrn)

        async def act(_timeout: float) -> network_pb2.NetworkAdviceResult:
            code = await self._books.capture(
                request.original_rrn,
                request.amount.minor_units,
                request.amount.currency,
                request.mcc,
            )
            return await self._with_conversion(answer(code), "capture", request.original_rrn)

        return await self._hop.run(context, "capture", request.original_rrn, act, answer)

    async def Refund(
        self, request: network_pb2.NetworkRefund, context: grpc.aio.ServicerContext
    ) -> network_pb2.NetworkAdviceResult:
        await self._require(context, request.rrn, "rrn")
        await self._require(context, request.original_rrn, "original_rrn")
        if request.HasField("conversion"):
            await self._check(context, request.conversion, False)
        answer = self._advice(request.rrn)

        async def act(_timeout: float) -> network_pb2.NetworkAdviceResult:
            day = request.conversion if request.HasField("conversion") else None
            code = await self._books.refund(
                request.rrn,
                request.original_rrn,
                request.amount.minor_units,
                request.amount.currency,
                fx.parse_rate(day.rate) if day is not None and day.rate else None,
                day.rate_table if day is not None else "",
            )
            return await self._with_conversion(answer(code), "refund", request.rrn)

        return await self._hop.run(context, "refund", request.rrn, act, answer)

    async def _with_conversion(
        self, result: network_pb2.NetworkAdviceResult, kind: str, rrn: str
    ) -> network_pb2.NetworkAdviceResult:
        """An approved capture or refund of a converted sale says what it posted."""
        if result.response_code == common_pb2.RESPONSE_CODE_APPROVED:
            c = await self._books.applied_conversion(kind, rrn)
            if c is not None:
                result.conversion.CopyFrom(_conversion_pb(c))
        return result

    async def Advise(
        self, request: network_pb2.NetworkAdvice, context: grpc.aio.ServicerContext
    ) -> network_pb2.NetworkAdviceResult:
        """Hold a stand-in approval (``Books.advise``): no checks but the card and currency."""
        await self._require(context, request.rrn, "rrn")
        answer = self._advice(request.rrn)

        async def act(_timeout: float) -> network_pb2.NetworkAdviceResult:
            code = await self._books.advise(
                request.rrn,
                self._cards.get(request.pan),
                request.amount.minor_units,
                request.amount.currency,
                request.auth_code,
            )
            return answer(code)

        return await self._hop.run(context, "advise", request.rrn, act, answer)

    async def GetAccount(
        self, request: network_pb2.GetAccountRequest, context: grpc.aio.ServicerContext
    ) -> network_pb2.GetAccountResponse:
        acct = await self._books.account(request.account_id)
        if acct is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such account")
        assert acct is not None  # abort raises
        return network_pb2.GetAccountResponse(
            account_id=acct.id,
            currency=acct.currency,
            balance=acct.balance,
            credit_limit=acct.credit_limit,
            held=acct.held,
            available=acct.available,
            open_holds=acct.open_holds,
        )

    async def GetHold(
        self, request: network_pb2.GetHoldRequest, context: grpc.aio.ServicerContext
    ) -> network_pb2.GetHoldResponse:
        hold = await self._books.hold(request.rrn)
        if hold is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no hold for this rrn")
        assert hold is not None  # abort raises
        return network_pb2.GetHoldResponse(
            rrn=hold.rrn,
            account_id=hold.account_id,
            state=hold.state,
            amount=hold.amount,
            posted=hold.posted,
            refunded=hold.refunded,
            currency=hold.currency,
        )


class IssuerNode:
    """The issuer as a NodeApp (see ``network.server``)."""

    service_names: tuple[str, ...] = (
        network_pb2.DESCRIPTOR.services_by_name["IssuerService"].full_name,
        back_office.ISSUER_SERVICE.full_name,
        offline_pb2.DESCRIPTOR.services_by_name["IssuerOfflineService"].full_name,
    )

    def __init__(
        self,
        config: IssuerConfig,
        books: Bookkeeper,
        hop: Hop,
        crypto: IssuerCrypto,
        publisher: StipPublisher | None = None,
        offline: OfflineIssuer | None = None,
    ) -> None:
        self.node_id = config.id
        self.publisher = publisher
        self.listen = config.listen
        self.hop = hop  # its runtime fault control is served by network.server
        self.books = books
        self.servicer = IssuerServicer(config, books, hop, crypto)
        self.settlement = back_office.IssuerSettlementServicer(config.id, books)
        self.offline = offline

    def add_to(self, server: grpc.aio.Server) -> None:
        network_pb2_grpc.add_IssuerServiceServicer_to_server(self.servicer, server)
        settlement_pb2_grpc.add_IssuerSettlementServiceServicer_to_server(self.settlement, server)
        if self.offline is not None:
            offline_pb2_grpc.add_IssuerOfflineServiceServicer_to_server(self.offline, server)

    async def close(self) -> None:
        if self.publisher is not None:
            await self.publisher.close()
        await self.books.close()
        if self.offline is not None:
            self.offline.close()


async def create(
    topology: Topology,
    node_id: str,
    *,
    seed: int | None = None,
    books_dir: str | Path | None = None,
    client: grpc.ChannelCredentials | None = None,
) -> IssuerNode:
    """``client`` is unused: the issuer calls nobody (the same signature as the others)."""
    config = topology.issuer(node_id)
    # Fail closed: without its HSM and keys the issuer does not start.
    crypto = await IssuerCrypto.open(config, topology)
    if books_dir is None:  # books that die with the temp dir: fine for a throwaway run
        books_dir = await asyncio.to_thread(tempfile.mkdtemp, prefix="payswitch-books-")
    books = await Bookkeeper.open(books_path(books_dir, node_id), config.accounts)
    books.set_rules(IssuerRules(config.hold_ttl_s, topology.settlement))
    books.set_atc_window(config.atc_window)
    # Its stand-in file is out before it serves; then refreshed in the background.
    publisher = StipPublisher(config, topology.standin, crypto, books)
    await publisher.publish_once()
    publisher.start()
    # The issuer has no margin: it answers rather than forwards.
    hop = Hop(node_id, 0, config.latency, config.faults, seed)
    # Offline payments: allowances signed with its offline key, holds in its offline books.
    offline_books = await asyncio.to_thread(
        OfflineBooks, Path(books_dir) / f"{node_id}.offline-books.sqlite"
    )
    accounts = {a.id: a.currency for a in config.accounts}
    offline = OfflineIssuer(node_id, crypto.pool, offline_books, accounts, ledger_books=books)
    return IssuerNode(config, books, hop, crypto, publisher, offline)
