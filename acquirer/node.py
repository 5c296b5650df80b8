"""Acquirer node: the merchant's bank host. Forwards by card brand to that brand's scheme.

Only brands the acquirer is contracted for (its ``schemes``) go through; any other brand,
or none, is answered 12 (invalid transaction) here. The scheme node for a brand is the first
one in the topology whose ``brands`` include it.

An authorization with a PIN block has it translated from the switch's zone PIN key to the
issuer's in the acquirer's own HSM before it is forwarded (``acquirer.pin_zone``); a block that
does not open is answered 96 here. The acquirer stamps its own id in ``acquirer_id`` (ISO 8583
field 32, the acquiring institution), which tells the issuer which zone PIN key to use. The
node opens its HSM at start and refuses to start without it or its keys (fail closed).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

from acquirer import back_office
from acquirer.pin_zone import PinTranslator
from network.channels import Channels
from network.hop import Decline, Hop, Step
from network.hsm_node import open_pool
from payswitch.brands import BRAND_OF
from payswitch.v1 import common_pb2, network_pb2, network_pb2_grpc, settlement_pb2_grpc
from payswitch.world.topology import AcquirerConfig, Topology

INVALID_TRANSACTION = common_pb2.RESPONSE_CODE_INVALID_TRANSACTION
ISSUER_UNAVAILABLE = common_pb2.RESPONSE_CODE_ISSUER_UNAVAILABLE

# The follow-ups forwarded as they are, by the card's brand.
_FollowUp = (
    network_pb2.NetworkReversal
    | network_pb2.NetworkCapture
    | network_pb2.NetworkRefund
    | network_pb2.NetworkAdvice
)


class AcquirerServicer(network_pb2_grpc.AcquirerServiceServicer):
    def __init__(
        self,
        node_id: str,
        hop: Hop,
        schemes: dict[int, network_pb2_grpc.SchemeServiceStub],
        pins: PinTranslator,
    ) -> None:
        self._id = node_id
        self._hop = hop
        self._schemes = schemes
        self._pins = pins

    def _advice(
        self, rrn: str
    ) -> Callable[[common_pb2.ResponseCode], network_pb2.NetworkAdviceResult]:
        def answer(code: common_pb2.ResponseCode) -> network_pb2.NetworkAdviceResult:
            return network_pb2.NetworkAdviceResult(rrn=rrn, response_code=code, responder=self._id)

        return answer

    async def Authorize(
        self, request: network_pb2.NetworkAuthorization, context: grpc.aio.ServicerContext
    ) -> network_pb2.NetworkAuthorizationResult:
        stub = self._schemes.get(request.scheme)

        def answer(code: common_pb2.ResponseCode) -> network_pb2.NetworkAuthorizationResult:
            return network_pb2.NetworkAuthorizationResult(
                rrn=request.rrn, stan=request.stan, response_code=code, responder=self._id
            )

        async def forward(timeout: float) -> network_pb2.NetworkAuthorizationResult:
            assert stub is not None
            onward = network_pb2.NetworkAuthorization()
            onward.CopyFrom(request)
            onward.acquirer_id = self._id
            if request.pin_block:
                started = time.monotonic()
                translated = await self._pins.translate(request.pin_block, request.pan)
                if translated.decline is not None:
                    return answer(translated.decline)
                onward.pin_block = translated.pin_block
                # The HSM's time (a queue under load) comes out of the onward budget.
                timeout -= time.monotonic() - started
                if timeout <= 0:
                    return answer(ISSUER_UNAVAILABLE)
            result: network_pb2.NetworkAuthorizationResult = await stub.Authorize(
                onward, timeout=timeout
            )
            return result

        target: Step[network_pb2.NetworkAuthorizationResult] | Decline = (
            Decline(INVALID_TRANSACTION) if stub is None else forward
        )
        return await self._hop.run(context, "authorize", request.rrn, target, answer)

    async def Reverse(
        self, request: network_pb2.NetworkReversal, context: grpc.aio.ServicerContext
    ) -> network_pb2.NetworkAdviceResult:
        return await self._follow_up(context, "Reverse", request.original_rrn, request)

    async def Capture(
        self, request: network_pb2.NetworkCapture, context: grpc.aio.ServicerContext
    ) -> network_pb2.NetworkAdviceResult:
        return await self._follow_up(context, "Capture", request.original_rrn, request)

    async def Refund(
        self, request: network_pb2.NetworkRefund, context: grpc.aio.ServicerContext
    ) -> network_pb2.NetworkAdviceResult:
        return await self._follow_up(context, "Refund", request.rrn, request)

    async def Advise(
        self, request: network_pb2.NetworkAdvice, context: grpc.aio.ServicerContext
    ) -> network_pb2.NetworkAdviceResult:
        return await self._follow_up(context, "Advise", request.rrn, request)

    async def _follow_up(
        self,
        context: grpc.aio.ServicerContext,
        method: str,
        rrn: str,
        request: _FollowUp,
    ) -> network_pb2.NetworkAdviceResult:
        """Forward a reversal, capture, refund or advice to the scheme node carrying the card's
        brand; ``rrn`` is the identifier the issuer keys the operation on."""
        stub = self._schemes.get(request.scheme)
        target: Step[network_pb2.NetworkAdviceResult] | Decline
        if stub is None:
            target = Decline(INVALID_TRANSACTION)
        else:
            call = getattr(stub, method)

            def forward(timeout: float) -> Awaitable[network_pb2.NetworkAdviceResult]:
                pending: Awaitable[network_pb2.NetworkAdviceResult] = call(request, timeout=timeout)
                return pending

            target = forward

        return await self._hop.run(context, method.lower(), rrn, target, self._advice(rrn))


class AcquirerNode:
    """The acquirer as a NodeApp (see ``network.server``)."""

    service_names: tuple[str, ...] = (
        network_pb2.DESCRIPTOR.services_by_name["AcquirerService"].full_name,
        back_office.ACQUIRER_SERVICE.full_name,
    )

    def __init__(
        self,
        config: AcquirerConfig,
        topology: Topology,
        hop: Hop,
        pins: PinTranslator,
        client: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.node_id = config.id
        self.listen = config.listen
        self.hop = hop  # its runtime fault control is served by network.server
        self._channels = Channels(client)
        schemes: dict[int, network_pb2_grpc.SchemeServiceStub] = {}
        for value, brand in BRAND_OF.items():
            scheme = topology.scheme_for_brand(brand) if brand in config.schemes else None
            if scheme is not None:
                channel = self._channels.get(scheme.listen, ("scheme", scheme.id))
                schemes[value] = network_pb2_grpc.SchemeServiceStub(channel)
        self.pins = pins
        self.servicer = AcquirerServicer(config.id, hop, schemes, pins)
        self.settlement = back_office.AcquirerSettlementServicer(config.id, topology, client)

    def add_to(self, server: grpc.aio.Server) -> None:
        network_pb2_grpc.add_AcquirerServiceServicer_to_server(self.servicer, server)
        settlement_pb2_grpc.add_AcquirerSettlementServiceServicer_to_server(self.settlement, server)

    async def close(self) -> None:
        await self._channels.close()
        await self.settlement.close()


async def create(
    topology: Topology,
    node_id: str,
    *,
    seed: int | None = None,
    books_dir: str | Path | None = None,
    client: grpc.ChannelCredentials | None = None,
) -> AcquirerNode:
    """``client``: the acquirer's network credentials for its onward calls (None: plaintext)."""
    config = topology.acquirer(node_id)
    # Fail closed: without its HSM and keys the acquirer does not start.
    pool = await open_pool(node_id, PinTranslator.key_labels(node_id, topology))
    pins = PinTranslator(node_id, topology, pool)
    hop = Hop(node_id, config.margin_ms, config.latency, config.faults, seed)
    return AcquirerNode(config, topology, hop, pins, client)
