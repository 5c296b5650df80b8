"""The load generator: closed loop (N terminals back to back) and open loop (fixed arrival rate).

Open loop computes every request's send time up front (``t0 + i / rate``) and measures latency
from that *scheduled* time. When the generator or the server falls behind, the wait shows up in
the latency instead of silently lowering the offered load (no coordinated omission). The lag
between scheduled and actual send is recorded too: a large lag with a small server latency means
the generator itself was starved.

Every loop is bounded by time and by count, every call by its deadline (measured from the
scheduled time), and whatever is still in flight after the deadline plus a grace is cancelled.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from benchmarks.traffic import RESPONSE_TYPES, Call, response_fields

SERVICE = "/payswitch.v1.TerminalService/"
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.use_local_subchannel_pool", 1),  # one connection per channel, not a shared one
]

NOT_SENT = "NOT_SENT_IN_FLIGHT_LIMIT"  # the generator refused to exceed --max-in-flight
LATE = "LATE_BEFORE_SEND"  # the generator was so far behind that the deadline had passed
CANCELLED = "CANCELLED_AT_END"  # still unanswered after the phase's drain window
GENERATOR_STATUSES = (NOT_SENT, LATE, CANCELLED)


class Feed(Protocol):
    """Where requests come from (``benchmarks.traffic``)."""

    built_live: int  # requests built during a phase because none was prepared

    def prepare(self, n: int) -> None: ...

    def next(self) -> Call: ...

    def on_result(self, call: Call, response: Any) -> None: ...


class Target:
    """``channels`` gRPC channels to each server (several: switch processes sharing one store,
    spread round-robin), raw multicallables taking prebuilt bytes."""

    def __init__(self, address: str | list[str], channels: int = 4) -> None:
        addresses = [address] if isinstance(address, str) else list(address)
        self.address = addresses[0]
        self._channels = [
            grpc.aio.insecure_channel(a, options=CHANNEL_OPTIONS)
            for _ in range(max(channels, 1))
            for a in addresses
        ]
        self._calls = [
            {
                method: ch.unary_unary(
                    SERVICE + method,
                    request_serializer=None,
                    response_deserializer=rtype.FromString,
                )
                for method, rtype in RESPONSE_TYPES.items()
            }
            for ch in self._channels
        ]
        self._rr = itertools.cycle(range(len(self._channels)))

    async def ready(self, timeout: float = 10.0) -> None:
        for ch in self._channels:
            await asyncio.wait_for(ch.channel_ready(), timeout)

    def invoke(self, call: Call, timeout: float, lane: int | None = None) -> Any:
        idx = next(self._rr) if lane is None else lane % len(self._calls)
        return self._calls[idx][call.method](call.payload, timeout=timeout)

    async def close(self) -> None:
        for ch in self._channels:
            await ch.close()


@dataclass
class Recorder:
    """Column lists, one entry per request (cheap to append, easy to summarise)."""

    sched: list[float] = field(default_factory=list)
    send: list[float] = field(default_factory=list)
    end: list[float] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    tx: list[str] = field(default_factory=list)
    rrn: list[str] = field(default_factory=list)
    key: list[str] = field(default_factory=list)

    def add(
        self,
        sched: float,
        send: float,
        end: float,
        call: Call,
        status: str,
        fields: tuple[str, str, str] = ("", "", ""),
    ) -> None:
        self.sched.append(sched)
        self.send.append(send)
        self.end.append(end)
        self.kind.append(call.kind)
        self.status.append(status)
        self.code.append(fields[0])
        self.tx.append(fields[1])
        self.rrn.append(fields[2])
        self.key.append(call.key)

    def __len__(self) -> int:
        return len(self.sched)


async def _one(
    target: Target,
    feed: Feed,
    rec: Recorder,
    call: Call,
    sched: float,
    deadline_s: float,
    lane: int | None,
) -> None:
    send = time.perf_counter()
    remaining = deadline_s - (send - sched)
    if remaining <= 0:
        rec.add(sched, send, send, call, LATE)
        return
    try:
        response = await target.invoke(call, remaining, lane)
    except grpc.aio.AioRpcError as exc:
        rec.add(sched, send, time.perf_counter(), call, exc.code().name)
        feed.on_result(call, None)
        return
    except asyncio.CancelledError:
        rec.add(sched, send, time.perf_counter(), call, CANCELLED)
        raise
    end = time.perf_counter()
    rec.add(sched, send, end, call, "OK", response_fields(call.method, response))
    feed.on_result(call, response)


async def closed_loop(
    target: Target,
    feed: Feed,
    concurrency: int,
    duration_s: float,
    *,
    deadline_s: float,
    max_requests: int,
) -> Recorder:
    """``concurrency`` workers, each sending its next request as soon as the last returns."""
    rec = Recorder()
    stop_at = time.perf_counter() + duration_s
    budget = iter(range(max_requests))

    async def worker(lane: int) -> None:
        while time.perf_counter() < stop_at and next(budget, None) is not None:
            await _one(target, feed, rec, feed.next(), time.perf_counter(), deadline_s, lane)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return rec


async def open_loop(
    target: Target,
    feed: Feed,
    rate: float,
    duration_s: float,
    *,
    deadline_s: float,
    max_requests: int,
    max_in_flight: int,
) -> Recorder:
    """``rate`` requests per second at scheduled times for ``duration_s`` (at most
    ``max_requests``), then up to ``deadline_s`` + 1 s for the stragglers."""
    rec = Recorder()
    total = min(int(rate * duration_s), max_requests)
    interval = 1.0 / rate
    tasks: set[asyncio.Task[None]] = set()
    t0 = time.perf_counter()
    i = 0
    while i < total:
        now = time.perf_counter()
        while i < total and t0 + i * interval <= now:
            sched = t0 + i * interval
            call = feed.next()
            if len(tasks) >= max_in_flight:
                rec.add(sched, now, now, call, NOT_SENT)
            else:
                task = asyncio.create_task(_one(target, feed, rec, call, sched, deadline_s, None))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            i += 1
        if i < total:
            await asyncio.sleep(max(t0 + i * interval - time.perf_counter(), 0.0))
    if tasks:
        _done, pending = await asyncio.wait(set(tasks), timeout=deadline_s + 1.0)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    return rec


def concurrency_list(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise ValueError("concurrency levels must be positive integers")
    return values


def rate_list(text: str) -> list[float]:
    values = [float(v) for v in text.split(",") if v.strip()]
    if not values or min(values) <= 0:
        raise ValueError("rates must be positive")
    return values


def sweep_rates(peak: float, fractions: Sequence[float]) -> list[float]:
    """Offered rates as fractions of a measured closed-loop peak, rounded, distinct."""
    out: list[float] = []
    for f in fractions:
        r = max(round(peak * f / 5) * 5, 5)
        if r not in out:
            out.append(float(r))
    return out
