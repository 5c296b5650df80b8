"""Admission: what every terminal RPC passes once, before it touches anything.

The terminal: its id is well formed and listed, its client certificate names it (mTLS), it is
not revoked (``TerminalRegistry.admit``), and it is within its rate. The switch sheds load
instead of queueing it: a request that cannot be served now is answered RESOURCE_EXHAUSTED at
once, before any state is touched, so a terminal can retry (or go elsewhere) while its
deadline still has time in it.

Two checks, both on the one event loop of a switch process (no locks needed):
``InFlight`` bounds the terminal RPCs being processed at once (an adaptive limit with a short
deadline-aware queue, ``switch.core.concurrency``); ``RateLimiter`` keeps a token bucket per
terminal id so one misbehaving terminal cannot take the whole switch. Each refusal is counted
in ``payswitch_shed_total{reason}`` (``expected_wait``, ``queue_timeout``, ``in_flight`` in
fixed mode, or ``terminal_rate``).

A terminal's allowance is spent only by a request that is known to come from it, so junk naming
a terminal cannot drain that terminal's bucket. With mTLS the certificate names the terminal, and
``admit`` takes the token once the registry has matched the certificate to ``terminal_id``
(another terminal's certificate is refused first). Without TLS nothing names the sender at
admission: an authorization takes its terminal's token only once its MAC has verified (the
pipeline's ``verify`` stage, ``take_verified``), and the other money-moving RPCs, which carry no
MAC, spend the allowance of the connection they arrive on (``connection``), never a terminal's.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from prometheus_client import Counter

from switch.core import metrics
from switch.core.concurrency import Gate, LimitSettings, Overloaded
from switch.core.registry import TerminalIdentity, TerminalRegistry
from switch.wire import validation
from switch.wire.errors import ApiError

_shed_cache: tuple[metrics.Metrics | None, dict[str, Counter]] = (None, {})


def _shed(reason: str) -> None:
    """Count one refusal; the label child is cached per metrics registry (shedding is when
    the switch is busiest, so it should cost as little as possible)."""
    global _shed_cache
    m = metrics.get()
    if _shed_cache[0] is not m:  # a new registry (tests): forget the old one's children
        _shed_cache = (m, {})
    children = _shed_cache[1]
    child = children.get(reason)
    if child is None:
        child = children[reason] = m.shed.labels(reason)
    child.inc()


class ResourceExhausted(ApiError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class InFlight:
    """The terminal RPCs being processed: ``enter`` (or the sync ``acquire`` without a queue)
    refuses with ResourceExhausted when the gate says so; ``release`` gives the slot back with
    the RPC's times (the adaptive limit's samples)."""

    def __init__(self, limit: int, settings: LimitSettings | None = None) -> None:
        s = settings or LimitSettings(adaptive=False, maximum=limit)
        self.gate = Gate(s)
        self.gate.publish(metrics.get())

    @property
    def limit(self) -> int:
        return self.gate.limit

    @property
    def current(self) -> int:
        return self.gate.in_flight

    def acquire(self) -> None:
        """A slot now or a refusal (no waiting)."""
        if not self.gate.try_enter():
            _shed("in_flight")
            raise ResourceExhausted("switch overloaded; retry later")

    async def enter(self, left_s: float) -> None:
        """A slot, waiting at most what the request can afford (``left_s`` of its deadline)."""
        if self.gate.try_enter():
            return
        try:
            await self.gate.enter(left_s)
        except Overloaded as exc:
            _shed(exc.reason)
            raise ResourceExhausted(exc.message) from None

    def release(self, total_s: float = 0.0, own_s: float | None = None) -> None:
        self.gate.leave(total_s, own_s)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token buckets per terminal id: ``burst`` tokens, refilled at ``rate_per_s``.

    The map is bounded (least recently used buckets are evicted past ``max_terminals``), so
    terminal ids sent by a hostile client cannot grow it without bound.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        max_terminals: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_terminals = max_terminals
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def tokens(self, terminal_id: str) -> float:
        """Tokens available now (for tests and metrics); a terminal never seen has a full bucket."""
        bucket = self._buckets.get(terminal_id)
        if bucket is None:
            return float(self.burst)
        return self._refilled(bucket, self._clock())

    def _refilled(self, bucket: _Bucket, now: float) -> float:
        return min(float(self.burst), bucket.tokens + (now - bucket.stamp) * self.rate_per_s)

    def take(self, terminal_id: str) -> None:
        """Spend one token of the terminal's bucket, or raise ResourceExhausted naming the limit."""
        now = self._clock()
        bucket = self._buckets.get(terminal_id)
        if bucket is None:
            self._make_room()
            bucket = _Bucket(float(self.burst), now)
            self._buckets[terminal_id] = bucket
        else:
            self._buckets.move_to_end(terminal_id)
            bucket.tokens = self._refilled(bucket, now)
            bucket.stamp = now
        if bucket.tokens < 1.0:
            _shed("terminal_rate")
            raise ResourceExhausted(
                f"terminal rate limit exceeded ({self.rate_per_s:g}/s, burst {self.burst}); "
                "retry later"
            )
        bucket.tokens -= 1.0

    def _make_room(self) -> None:
        # The least recently used bucket is the idlest; dropping it at worst gives that
        # terminal a fresh burst.
        while len(self._buckets) >= self.max_terminals:
            self._buckets.popitem(last=False)


class Admission:
    """What a terminal RPC passes before it runs: the process's in-flight bound (taken by
    ``TerminalService`` around every RPC but Echo) and ``admit``, once per RPC (the
    authorization pipeline's ``admit`` stage, or ``TerminalService`` for the others)."""

    def __init__(
        self,
        registry: TerminalRegistry,
        *,
        tls: bool,
        max_in_flight: int,
        rate_per_s: float,
        burst: int,
        limits: LimitSettings | None = None,
    ) -> None:
        self.registry = registry
        self.tls = tls
        self.in_flight = InFlight(max_in_flight, limits)
        self.rates = RateLimiter(rate_per_s, burst)

    def admit(
        self, terminal_id: str, peer: str | None, *, rate: bool, connection: str = ""
    ) -> TerminalIdentity:
        """The terminal's identity once it may send this request: the id well formed and
        listed, the certificate's terminal (``peer``) its own, not revoked, and, for the
        money-moving RPCs (``rate``), a token: of the terminal's bucket with mTLS, of the
        bucket of ``connection`` (``context.peer()``) without. Raises the ApiError to answer."""
        validation.identifier(terminal_id, "terminal_id")
        identity = self.registry.admit(terminal_id, peer, self.tls)
        if rate:
            self.rates.take(terminal_id if self.tls else f"connection:{connection}")
        return identity

    @property
    def rate_at_admission(self) -> bool:
        """Whether an authorization takes its terminal's token at admission (mTLS: the
        certificate named it) rather than after its MAC verified (``take_verified``)."""
        return self.tls

    def take_verified(self, terminal_id: str) -> None:
        """Without TLS, an authorization whose MAC verified takes its terminal's token."""
        if not self.tls:
            self.rates.take(terminal_id)
