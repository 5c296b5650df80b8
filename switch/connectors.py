"""Acquirer connectors: one gRPC channel and stub per acquirer, made once per process.

A connector call either returns the acquirer's answer or raises ``OutcomeUnknown``: any error
after the request may have left this process (deadline, broken connection, UNAVAILABLE) means
the issuer may have acted, so the caller must reverse, never retry blindly.
"""

from __future__ import annotations

import grpc

from network.topology import Topology
from payswitch.v1 import network_pb2, network_pb2_grpc

_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
]


class OutcomeUnknown(Exception):
    """The call did not produce an answer; whether the far end acted is unknown."""

    def __init__(self, acquirer_id: str, code: grpc.StatusCode | None) -> None:
        name = code.name if code else "NO_ANSWER"
        super().__init__(f"no answer from {acquirer_id}: {name}")
        self.code = code


class AcquirerConnector:
    def __init__(self, acquirer_id: str, target: str) -> None:
        self.id = acquirer_id
        self.target = target
        self._channel = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
        self._stub = network_pb2_grpc.AcquirerServiceStub(self._channel)

    async def _call(self, method, message, timeout: float):
        try:
            return await method(message, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise OutcomeUnknown(self.id, exc.code()) from None

    async def authorize(
        self, msg: network_pb2.NetworkAuthorization, timeout: float
    ) -> network_pb2.NetworkAuthorizationResult:
        return await self._call(self._stub.Authorize, msg, timeout)

    async def reverse(
        self, msg: network_pb2.NetworkReversal, timeout: float
    ) -> network_pb2.NetworkAdviceResult:
        return await self._call(self._stub.Reverse, msg, timeout)

    async def capture(
        self, msg: network_pb2.NetworkCapture, timeout: float
    ) -> network_pb2.NetworkAdviceResult:
        return await self._call(self._stub.Capture, msg, timeout)

    async def refund(
        self, msg: network_pb2.NetworkRefund, timeout: float
    ) -> network_pb2.NetworkAdviceResult:
        return await self._call(self._stub.Refund, msg, timeout)

    async def close(self) -> None:
        await self._channel.close()


class Connectors:
    """All acquirer connectors of this switch process, by acquirer id."""

    def __init__(self, topology: Topology) -> None:
        self._by_id = {a.id: AcquirerConnector(a.id, a.listen) for a in topology.acquirers}

    def get(self, acquirer_id: str) -> AcquirerConnector:
        return self._by_id[acquirer_id]

    async def close(self) -> None:
        for conn in self._by_id.values():
            await conn.close()
