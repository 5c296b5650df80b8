"""Acquirer connectors: one gRPC channel and stub per acquirer, made once per process.

A connector call either returns the acquirer's answer or raises ``OutcomeUnknown``: any error
after the request may have left this process (deadline, broken connection, UNAVAILABLE) means
the issuer may have acted, so the caller must reverse, never retry blindly.

``Refused`` (a subclass, so older callers treat it as they treat any failed attempt) is the
one case where the request certainly did not leave: the circuit breaker refused it, or the
channel had no connection and could not get one within ``connect_timeout_ms``. Only then may
an authorization fail over to the next acquirer. The check is explicit (channel state READY
before the call is made) because a gRPC error cannot say whether bytes went out.

Each acquirer's ``timeout_ms`` (topology) caps how long a call waits, under the request's
remaining budget. Every call is timed into ``payswitch_hop_seconds`` with its outcome
(answered, unknown, refused). Authorizations and advices go through the acquirer's circuit
breaker; reversals, captures and refunds do not (they have their own retry with backoff, and
must keep trying whatever the breaker thinks).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import grpc
from google.protobuf.message import Message

from payswitch.logs import get as get_logger
from payswitch.tls import aio_channel
from payswitch.v1 import network_pb2, network_pb2_grpc
from payswitch.world.topology import AcquirerConfig, Topology
from switch.core import metrics
from switch.routing.breakers import Breakers, CircuitBreaker

_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    # An acquirer that comes back is reconnected to within a second, not minutes.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
# Grace for calls still running on a channel that a half-open probe replaces.
_OLD_CHANNEL_GRACE_S = 5.0

_log = get_logger("switch.routing.connectors")
_READY = grpc.ChannelConnectivity.READY
_FAILED = (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN)


# Called once the acquirer is known to take the request, right before it is sent.
Prepare = Callable[[], Awaitable[network_pb2.NetworkAuthorization]]

_Req = TypeVar("_Req", bound=Message)
_Resp = TypeVar("_Resp", bound=Message)
_ReqIn = TypeVar("_ReqIn", bound=Message, contravariant=True)
_RespOut = TypeVar("_RespOut", bound=Message, covariant=True)


class _Rpc(Protocol[_ReqIn, _RespOut]):
    """One unary method of a grpc.aio stub (grpc ships no types)."""

    def __call__(
        self, request: _ReqIn, *, timeout: float, wait_for_ready: bool
    ) -> Awaitable[_RespOut]: ...


class _AcquirerStub(Protocol):
    """``network_pb2_grpc.AcquirerServiceStub``, typed by the messages it carries."""

    Authorize: _Rpc[network_pb2.NetworkAuthorization, network_pb2.NetworkAuthorizationResult]
    Advise: _Rpc[network_pb2.NetworkAdvice, network_pb2.NetworkAdviceResult]
    Reverse: _Rpc[network_pb2.NetworkReversal, network_pb2.NetworkAdviceResult]
    Capture: _Rpc[network_pb2.NetworkCapture, network_pb2.NetworkAdviceResult]
    Refund: _Rpc[network_pb2.NetworkRefund, network_pb2.NetworkAdviceResult]


class OutcomeUnknown(Exception):
    """The call did not produce an answer; whether the far end acted is unknown."""

    def __init__(self, acquirer_id: str, code: grpc.StatusCode | None) -> None:
        name = code.name if code else "NO_ANSWER"
        super().__init__(f"no answer from {acquirer_id}: {name}")
        self.code = code


class Refused(OutcomeUnknown):
    """The request was never sent (circuit open, or no connection): safe to fail over."""

    def __init__(self, acquirer_id: str, reason: str) -> None:
        Exception.__init__(self, f"{acquirer_id} refused before sending: {reason}")
        self.code = None
        self.reason = reason


class AcquirerConnector:
    def __init__(
        self,
        acquirer_id: str,
        target: str,
        *,
        timeout_s: float = 2.0,
        connect_timeout_s: float = 0.1,
        breaker: CircuitBreaker | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.id = acquirer_id
        self._credentials = credentials  # the switch's network identity; None: plaintext
        self.target = target
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.breaker = breaker
        self._old: set[asyncio.Task[None]] = set()
        self._open_channel()

    def _open_channel(self) -> None:
        self._channel = aio_channel(
            self.target, self._credentials, _CHANNEL_OPTIONS, ("acquirer", self.id)
        )
        self._stub: _AcquirerStub = network_pb2_grpc.AcquirerServiceStub(self._channel)

    def _renew_channel(self) -> None:
        """A fresh channel (no reconnect backoff left over from the outage) for a probe; the
        old one is closed once its calls are done."""
        old = self._channel
        self._open_channel()
        task = asyncio.get_running_loop().create_task(old.close(_OLD_CHANNEL_GRACE_S))
        self._old.add(task)
        task.add_done_callback(self._old.discard)

    def warm(self) -> None:
        self._channel.get_state(try_to_connect=True)

    async def ready(self, bound_s: float) -> bool:
        """True once the channel has a connection; False when it cannot get one in
        ``bound_s`` (connection refused, or still trying): nothing was sent."""
        channel = self._channel
        state = channel.get_state(try_to_connect=True)
        deadline = time.monotonic() + max(0.0, bound_s)
        while state is not _READY:
            remaining = deadline - time.monotonic()
            if state in _FAILED or remaining <= 0:
                return False
            try:
                await asyncio.wait_for(channel.wait_for_state_change(state), remaining)
            except TimeoutError:
                return False
            state = channel.get_state(try_to_connect=True)
        return True

    async def _call(
        self,
        rpc: str,
        method: _Rpc[_Req, _Resp],
        message: _Req,
        timeout: float,
        wait_for_ready: bool = False,
    ) -> _Resp:
        started = time.perf_counter()
        outcome = "unknown"
        try:
            result = await method(
                message, timeout=min(timeout, self.timeout_s), wait_for_ready=wait_for_ready
            )
            outcome = "answered"
            return result
        except grpc.aio.AioRpcError as exc:
            raise OutcomeUnknown(self.id, exc.code()) from None
        finally:
            metrics.get().hop_seconds.labels(self.id, rpc, outcome).observe(
                time.perf_counter() - started
            )

    def _refuse(self, rpc: str, reason: str) -> Refused:
        metrics.get().hop_seconds.labels(self.id, rpc, "refused").observe(0.0)
        _log.info("acquirer_refused", acquirer=self.id, rpc=rpc, reason=reason)
        return Refused(self.id, reason)

    async def _guarded(
        self,
        rpc: str,
        method_of: Callable[[_AcquirerStub], _Rpc[_Req, _Resp]],
        message: _Req,
        timeout: float,
        prepare: Callable[[], Awaitable[_Req]] | None = None,
    ) -> _Resp:
        """Through the breaker: admitted, connected (or ``Refused``), then ``prepare`` (the
        caller's last step before sending, e.g. recording which acquirer it uses; it returns
        the message to send), then the call with what is left of ``timeout`` (to the method
        ``method_of`` picks on the stub then current: a probe may have renewed it)."""
        breaker = self.breaker
        if breaker is not None and not breaker.allow():
            raise self._refuse(rpc, "circuit open")
        started = time.monotonic()
        try:
            probing = breaker is not None and breaker.state == "half_open"
            if probing and self._channel.get_state() is not _READY:
                self._renew_channel()
            connected = await self.ready(min(self.connect_timeout_s, timeout))
            if connected and prepare is not None:
                message = await prepare()
        except BaseException:
            if breaker is not None:
                breaker.cancel()
            raise
        if not connected:
            if breaker is not None:
                breaker.failure()
            raise self._refuse(rpc, "no connection")
        timeout -= time.monotonic() - started
        if timeout <= 0:
            if breaker is not None:
                breaker.cancel()
            raise self._refuse(rpc, "no time left")
        try:
            result = await self._call(rpc, method_of(self._stub), message, timeout)
        except OutcomeUnknown:
            if breaker is not None:
                breaker.failure()
            raise
        except BaseException:
            if breaker is not None:
                breaker.cancel()
            raise
        if breaker is not None:
            breaker.success()
        return result

    async def authorize(
        self,
        msg: network_pb2.NetworkAuthorization,
        timeout: float,
        prepare: Prepare | None = None,
    ) -> network_pb2.NetworkAuthorizationResult:
        return await self._guarded("authorize", lambda s: s.Authorize, msg, timeout, prepare)

    async def advise(
        self, msg: network_pb2.NetworkAdvice, timeout: float
    ) -> network_pb2.NetworkAdviceResult:
        return await self._guarded("advise", lambda s: s.Advise, msg, timeout)

    async def reverse(
        self, msg: network_pb2.NetworkReversal, timeout: float
    ) -> network_pb2.NetworkAdviceResult:
        # A reversal is store-and-forward work with no terminal waiting: an attempt waits (up
        # to its timeout) for a connection still in reconnect backoff after an outage instead
        # of failing at once, so a short retry schedule is not spent against a closed socket.
        # Resending is harmless: the issuer reverses idempotently on the RRN.
        return await self._call("reverse", self._stub.Reverse, msg, timeout, wait_for_ready=True)

    async def capture(
        self, msg: network_pb2.NetworkCapture, timeout: float
    ) -> network_pb2.NetworkAdviceResult:
        return await self._call("capture", self._stub.Capture, msg, timeout)

    async def refund(
        self, msg: network_pb2.NetworkRefund, timeout: float
    ) -> network_pb2.NetworkAdviceResult:
        return await self._call("refund", self._stub.Refund, msg, timeout)

    async def close(self) -> None:
        await self._channel.close()
        if self._old:
            await asyncio.gather(*self._old, return_exceptions=True)


def _connector(
    a: AcquirerConfig,
    topology: Topology,
    breakers: Breakers | None,
    credentials: grpc.ChannelCredentials | None,
) -> AcquirerConnector:
    return AcquirerConnector(
        a.id,
        a.listen,
        timeout_s=a.timeout_ms / 1000,
        connect_timeout_s=topology.breaker.connect_timeout_ms / 1000,
        breaker=breakers.get(a.id) if breakers is not None else None,
        credentials=credentials,
    )


class Connectors:
    """All acquirer connectors of this switch process, by acquirer id; ``credentials``: the
    switch's network certificate (``payswitch.tls.network_client_credentials``), None when the
    topology's network is plaintext."""

    def __init__(
        self,
        topology: Topology,
        breakers: Breakers | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._by_id = {
            a.id: _connector(a, topology, breakers, credentials) for a in topology.acquirers
        }

    def get(self, acquirer_id: str) -> AcquirerConnector:
        return self._by_id[acquirer_id]

    def warm(self) -> None:
        """Start connecting every channel now, so that the first request does not spend its
        connect bound on a handshake."""
        for conn in self._by_id.values():
            conn.warm()

    async def close(self) -> None:
        for conn in self._by_id.values():
            await conn.close()
