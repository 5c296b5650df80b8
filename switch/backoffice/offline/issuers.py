"""The switch's calls to issuers for offline payments (``IssuerOfflineService``), over its
network identity, as the settlement run's back-office calls are.

``pay`` posts one accepted spend to its issuer (the advice), keyed by the spend's digest, so
the issuer posts it once however often it is sent. It is called by the store-and-forward
queue's ``OFFLINE_ADVICE`` handler (``switch.backoffice.offline.sales``), never inside an
upload: an issuer that cannot be reached raises ``IssuerUnavailable`` and the queue retries,
dead-letters and replays the advice. ``grant`` passes an allowance request to the issuer.
"""

from __future__ import annotations

import grpc

from payswitch.process import connect_address
from payswitch.tls import aio_channel
from payswitch.v1 import offline_pb2, offline_pb2_grpc
from payswitch.world.topology import Topology, TopologyError
from switch.backoffice.offline.settle import Payment

TIMEOUT_S = 5.0


class IssuerUnavailable(Exception):
    """The issuer did not take the call: retry later (nothing was lost)."""


class UnknownIssuer(ValueError):
    pass


class IssuerLink:
    def __init__(self, topology: Topology, credentials: grpc.ChannelCredentials | None) -> None:
        self._topology = topology
        self._credentials = credentials
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _stub(self, issuer_id: str) -> offline_pb2_grpc.IssuerOfflineServiceStub:
        try:
            issuer = self._topology.issuer(issuer_id)
        except TopologyError:
            raise UnknownIssuer(issuer_id) from None
        if issuer_id not in self._channels:
            self._channels[issuer_id] = aio_channel(
                connect_address(issuer.listen), self._credentials, server=("issuer", issuer_id)
            )
        return offline_pb2_grpc.IssuerOfflineServiceStub(self._channels[issuer_id])

    async def pay(self, p: Payment) -> None:
        request = offline_pb2.PostOfflineSpendRequest(
            spend_key=p.key,
            allowance_id=p.allowance_id,
            amount=p.amount,
            currency=p.currency,
            merchant_id=p.merchant_id,
            beyond_allowance=p.beyond_allowance,
        )
        try:
            await self._stub(p.issuer).PostOfflineSpend(request, timeout=TIMEOUT_S)
        except (grpc.aio.AioRpcError, UnknownIssuer) as exc:
            raise IssuerUnavailable(f"issuer {p.issuer}: offline spend not posted") from exc

    async def grant(
        self, request: offline_pb2.GrantOfflineAllowanceRequest
    ) -> offline_pb2.GrantOfflineAllowanceResponse:
        answer: offline_pb2.IssueOfflineAllowanceResponse = await self._stub(
            request.issuer
        ).IssueOfflineAllowance(
            offline_pb2.IssueOfflineAllowanceRequest(grant=request), timeout=TIMEOUT_S
        )
        granted: offline_pb2.GrantOfflineAllowanceResponse = answer.allowance
        return granted

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
