"""Scheme node: a card network (VisaNet, Banknet, ...). Routes by BIN to the issuer.

Authorizations route by the PAN, follow-ups (reversal, capture, refund) by their ``bin``
field; the issuer whose BIN range matches longest wins. No issuer: 14 (invalid card number).
A brand this network does not carry is answered 12 (invalid transaction).

Currency conversion (issue 16, ``payswitch.fx``): when the card bills another currency than the
authorization's, the scheme converts with its rate table in force today (UTC), sets
``conversion`` (billing amount, rate, table version) on the request the issuer gets and echoes
it on the answer. A card whose currency the table does not quote is declined 12 (fail closed:
nothing converted at a guessed rate). A refund of such a sale carries the billing currency
(from the switch); the scheme stamps the day's rate on it, so a refund after a rate change is
converted at the new rate.

PIN blocks pass through untouched: in this simulation the acquirer and the issuer share a zone
PIN key, so the scheme needs no HSM. A real scheme sits between two zones (acquirer/scheme and
scheme/issuer ZPKs) and translates the block in its own HSM.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path

import grpc

from network.channels import Channels
from network.hop import Decline, Hop, Step
from payswitch import fx
from payswitch.brands import BRAND_OF
from payswitch.v1 import common_pb2, network_pb2, network_pb2_grpc
from payswitch.world.topology import IssuerConfig, SchemeConfig, Topology, billing_currency

INVALID_TRANSACTION = common_pb2.RESPONSE_CODE_INVALID_TRANSACTION
INVALID_CARD_NUMBER = common_pb2.RESPONSE_CODE_INVALID_CARD_NUMBER

# The follow-ups routed as they are, to the card's issuer.
_FollowUp = (
    network_pb2.NetworkReversal
    | network_pb2.NetworkCapture
    | network_pb2.NetworkRefund
    | network_pb2.NetworkAdvice
)


class SchemeServicer(network_pb2_grpc.SchemeServiceServicer):
    def __init__(
        self,
        config: SchemeConfig,
        topology: Topology,
        hop: Hop,
        issuers: dict[str, network_pb2_grpc.IssuerServiceStub],
    ) -> None:
        self._id = config.id
        self._carried = {v for v, b in BRAND_OF.items() if b in config.brands}
        self._topology = topology
        self._hop = hop
        self._issuers = issuers
        self._rates = config.rates

    def _today(self) -> date:
        return datetime.now(UTC).date()

    def _convert(
        self, amount: common_pb2.Money, target: str
    ) -> network_pb2.Conversion | Decline | None:
        """The day's conversion of ``amount`` into ``target``; None when none is needed."""
        if not target or target == amount.currency:
            return None
        table = fx.table_for(self._rates, self._today())
        try:
            if table is None:
                raise fx.FxError("rate_table", "no rate table in force")
            c = table.convert(amount.minor_units, amount.currency, target)
        except (fx.FxError, ValueError):
            return Decline(INVALID_TRANSACTION)
        return network_pb2.Conversion(
            billing_amount=common_pb2.Money(minor_units=c.billing_minor, currency=target),
            rate=fx.format_rate(c.rate),
            rate_table=c.table_version,
        )

    def _route(self, scheme: int, digits: str) -> network_pb2_grpc.IssuerServiceStub | Decline:
        if scheme not in self._carried:
            return Decline(INVALID_TRANSACTION)
        issuer: IssuerConfig | None = self._topology.issuer_for_pan(digits) if digits else None
        if issuer is None:
            return Decline(INVALID_CARD_NUMBER)
        return self._issuers[issuer.id]

    def _advice(
        self, rrn: str
    ) -> Callable[[common_pb2.ResponseCode], network_pb2.NetworkAdviceResult]:
        def answer(code: common_pb2.ResponseCode) -> network_pb2.NetworkAdviceResult:
            return network_pb2.NetworkAdviceResult(rrn=rrn, response_code=code, responder=self._id)

        return answer

    async def Authorize(
        self, request: network_pb2.NetworkAuthorization, context: grpc.aio.ServicerContext
    ) -> network_pb2.NetworkAuthorizationResult:
        route = self._route(request.scheme, request.pan)
        conversion = None
        if not isinstance(route, Decline):
            converted = self._convert(
                request.amount, billing_currency(self._topology, request.pan) or ""
            )
            if isinstance(converted, Decline):
                route = converted
            elif converted is not None:
                conversion = converted
                request.conversion.CopyFrom(converted)

        def answer(code: common_pb2.ResponseCode) -> network_pb2.NetworkAuthorizationResult:
            return network_pb2.NetworkAuthorizationResult(
                rrn=request.rrn, stan=request.stan, response_code=code, responder=self._id
            )

        target: Step[network_pb2.NetworkAuthorizationResult] | Decline
        if isinstance(route, Decline):
            target = route
        else:
            issuer = route

            async def forward(timeout: float) -> network_pb2.NetworkAuthorizationResult:
                result: network_pb2.NetworkAuthorizationResult = await issuer.Authorize(
                    request, timeout=timeout
                )
                if conversion is not None:
                    result.conversion.CopyFrom(conversion)
                return result

            target = forward
        return await self._hop.run(context, "authorize", request.rrn, target, answer)

    async def Reverse(
        self, request: network_pb2.NetworkReversal, context: grpc.aio.ServicerContext
    ) -> network_pb2.NetworkAdviceResult:
        return await self._follow_up(context, "Reverse", request.original_rrn, request, request.bin)

    async def Capture(
        self, request: network_pb2.NetworkCapture, context: grpc.aio.ServicerContext
    ) -> network_pb2.NetworkAdviceResult:
        return await self._follow_up(context, "Capture", request.original_rrn, request, request.bin)

    async def Refund(
        self, request: network_pb2.NetworkRefund, context: grpc.aio.ServicerContext
    ) -> network_pb2.NetworkAdviceResult:
        """A refund of a converted sale gets the day's rate (``conversion`` without amount)."""
        if request.HasField("conversion"):
            day = self._convert(request.amount, request.conversion.billing_amount.currency)
            if isinstance(day, Decline):
                return self._advice(request.rrn)(day.code)
            if day is not None:
                request.conversion.rate = day.rate
                request.conversion.rate_table = day.rate_table
                request.conversion.billing_amount.minor_units = 0  # the issuer allocates it
        return await self._follow_up(context, "Refund", request.rrn, request, request.bin)

    async def Advise(
        self, request: network_pb2.NetworkAdvice, context: grpc.aio.ServicerContext
    ) -> network_pb2.NetworkAdviceResult:
        """A stand-in advice carries the card as an authorization does: routed by its PAN."""
        return await self._follow_up(context, "Advise", request.rrn, request, request.pan)

    async def _follow_up(
        self,
        context: grpc.aio.ServicerContext,
        method: str,
        rrn: str,
        request: _FollowUp,
        digits: str,
    ) -> network_pb2.NetworkAdviceResult:
        """Route a reversal, capture or refund by its BIN (an advice by its PAN), ``digits``, to
        the issuer; ``rrn`` is the identifier the issuer keys the operation on."""
        route = self._route(request.scheme, digits)
        target: Step[network_pb2.NetworkAdviceResult] | Decline
        if isinstance(route, Decline):
            target = route
        else:
            call = getattr(route, method)

            def forward(timeout: float) -> Awaitable[network_pb2.NetworkAdviceResult]:
                pending: Awaitable[network_pb2.NetworkAdviceResult] = call(request, timeout=timeout)
                return pending

            target = forward

        return await self._hop.run(context, method.lower(), rrn, target, self._advice(rrn))


class SchemeNode:
    """The scheme network as a NodeApp (see ``network.server``)."""

    service_names: tuple[str, ...] = (
        network_pb2.DESCRIPTOR.services_by_name["SchemeService"].full_name,
    )

    def __init__(
        self,
        config: SchemeConfig,
        topology: Topology,
        hop: Hop,
        client: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.node_id = config.id
        self.listen = config.listen
        self.hop = hop  # its runtime fault control is served by network.server
        self._channels = Channels(client)
        issuers = {
            i.id: network_pb2_grpc.IssuerServiceStub(self._channels.get(i.listen, ("issuer", i.id)))
            for i in topology.issuers
        }
        self.servicer = SchemeServicer(config, topology, hop, issuers)

    def add_to(self, server: grpc.aio.Server) -> None:
        network_pb2_grpc.add_SchemeServiceServicer_to_server(self.servicer, server)

    async def close(self) -> None:
        await self._channels.close()


async def create(
    topology: Topology,
    node_id: str,
    *,
    seed: int | None = None,
    books_dir: str | Path | None = None,
    client: grpc.ChannelCredentials | None = None,
) -> SchemeNode:
    """``client``: the scheme's network credentials for calling issuers (None: plaintext)."""
    config = topology.scheme_node(node_id)
    hop = Hop(node_id, config.margin_ms, config.latency, config.faults, seed)
    return SchemeNode(config, topology, hop, client)
