"""The switch's concurrency limit: how many terminal RPCs one process works on at once, the
short queue in front of it, and the bounded share left to store-and-forward work.

Why. Past saturation every extra request in progress only adds latency to all of them; with a
fixed bound far above the knee (256), an overload made every request slow, forwards ran out of
budget, each 91 left a reversal behind, and the switch did not recover once the overload ended.
So the limit follows the knee (``GradientLimit``) and the excess is answered at once.

``GradientLimit`` (after Netflix's concurrency-limits "gradient" and Envoy's adaptive
concurrency filter): every window (``window_s`` and at least ``MIN_WINDOW_SAMPLES`` samples) it
compares the window's mean RTT with the minimum RTT (the lowest window mean of the last
``MIN_RTT_WINDOWS`` windows): ``gradient = clamp(tolerance * min_rtt / rtt, 0.5, 1)``, the new
limit ``limit * gradient + sqrt(limit)``, smoothed (``SMOOTHING``) and clamped to
``[minimum, maximum]``. While at most half the limit is used the limit stays as it is (an idle
switch learns nothing about its knee). The RTT sample is the switch's own time: the
authorization's time less its wait for the acquirer (``AuthContext.downstream_s``), so a slow
acquirer (which the breakers and stand-in handle) does not shrink the switch's limit.

``Gate``: a request enters at once below the limit; above it, it waits in a FIFO queue only if
its expected wait (its place in the queue times the mean time a slot is held, divided by the
limit: Little's law) fits in both ``queue_s`` and what is left of its deadline after a typical
service time; otherwise it is refused at once (RESOURCE_EXHAUSTED). A waiter that gets no slot
within that bound is refused then. ``fixed`` mode (``[switch] admission = "fixed"``) is the old
behaviour: limit ``max_in_flight``, no queue.

Background work (store-and-forward reversals and advices) enters through ``background()``: at
most ``share`` of the limit at once (at least one), counted against the limit, so the
reversals an overload leaves behind cannot double the load, and still always progress.

Everything runs on the switch's one event loop (no locks); the clock is injected for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from payswitch.world.topology import SwitchConfig
from switch.core import metrics

MIN_WINDOW_SAMPLES = 8
MIN_RTT_WINDOWS = 300  # the minimum RTT is the lowest window mean of about the last 30 s
SMOOTHING = 0.25
EWMA = 0.1  # weight of a new sample in the mean time a slot is held


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """``[switch]`` admission settings (see ``payswitch.world.topology.SwitchConfig``)."""

    adaptive: bool = True
    initial: int = 64
    minimum: int = 32
    maximum: int = 256
    tolerance: float = 2.0
    window_s: float = 0.1
    queue_s: float = 0.4
    background_share: float = 0.25

    @classmethod
    def of(cls, cfg: SwitchConfig) -> LimitSettings:
        """From ``[switch]``; the initial and minimum limits are capped at ``max_in_flight``."""
        top = cfg.max_in_flight
        return cls(
            adaptive=cfg.admission == "adaptive",
            initial=min(cfg.limit_initial, top),
            minimum=min(cfg.limit_min, top),
            maximum=top,
            tolerance=cfg.limit_tolerance,
            window_s=cfg.limit_window_ms / 1000,
            queue_s=cfg.queue_ms / 1000,
            background_share=cfg.background_share,
        )


class GradientLimit:
    """The adaptive limit: fed one RTT sample per completed request, revised per window."""

    def __init__(self, s: LimitSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.s = s
        self.limit = float(min(max(s.initial, s.minimum), s.maximum))
        self.min_rtt: float | None = None
        self.last_rtt: float | None = None
        self._clock = clock
        self._mins: deque[float] = deque(maxlen=MIN_RTT_WINDOWS)
        self._start = clock()
        self._sum = 0.0
        self._count = 0
        self._peak = 0  # the most requests in progress seen in this window

    def sample(self, rtt_s: float, in_flight: int) -> None:
        """One completed request's own time, with the requests in progress when it ended."""
        self._sum += rtt_s
        self._count += 1
        if in_flight > self._peak:
            self._peak = in_flight
        now = self._clock()
        if self._count >= MIN_WINDOW_SAMPLES and now - self._start >= self.s.window_s:
            self._revise(self._sum / self._count, self._peak)
            self._start, self._sum, self._count, self._peak = now, 0.0, 0, 0

    def _revise(self, rtt: float, peak: int) -> None:
        self.last_rtt = rtt
        self._mins.append(rtt)
        self.min_rtt = min(self._mins)
        if peak < self.limit / 2:
            return  # not used enough to say anything about the knee
        gradient = max(0.5, min(1.0, self.s.tolerance * self.min_rtt / rtt))
        target = self.limit * gradient + math.sqrt(self.limit)
        smoothed = self.limit * (1 - SMOOTHING) + target * SMOOTHING
        self.limit = min(float(self.s.maximum), max(float(self.s.minimum), smoothed))


class Overloaded(Exception):
    """Refused by the gate; ``reason`` is the ``payswitch_shed_total`` label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Gate:
    """In-flight accounting, the admission queue and the background share of one process."""

    def __init__(self, s: LimitSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.s = s
        self.limiter = GradientLimit(s, clock) if s.adaptive else None
        self.in_flight = 0  # terminal RPCs being worked on
        self.background = 0  # store-and-forward attempts being worked on
        self.hold_s: float | None = None  # mean time a terminal RPC holds its slot
        self._clock = clock
        self._queue: deque[asyncio.Future[None]] = deque()
        self._bg_queue: deque[asyncio.Future[None]] = deque()

    # --- what the limit is now --------------------------------------------------------
    @property
    def limit(self) -> int:
        return int(self.limiter.limit) if self.limiter is not None else self.s.maximum

    @property
    def background_cap(self) -> int:
        return max(1, int(self.s.background_share * self.limit))

    @property
    def queued(self) -> int:
        return len(self._queue)  # a waiter that gives up leaves it at once (``_abandon``)

    def expected_wait(self, ahead: int) -> float:
        """Seconds until a slot frees for a request with ``ahead`` waiters before it."""
        if self.hold_s is None:
            return 0.0
        return (ahead + 1) * self.hold_s / max(self.limit, 1)

    # --- terminal RPCs ----------------------------------------------------------------
    def try_enter(self) -> bool:
        """The fast path: a slot now, with nobody waiting before us."""
        if self.in_flight + self.background < self.limit and not self._queue:
            self.in_flight += 1
            return True
        return False

    async def enter(self, left_s: float) -> None:
        """A slot, waiting for one only as long as the request can afford (``left_s``: what
        is left of its deadline). Raises ``Overloaded`` at once when it cannot."""
        if self.try_enter():
            return
        if self.limiter is None:
            raise Overloaded("in_flight", "switch overloaded; retry later")
        self._dispatch()  # the limit may have grown since the last slot was given back
        if self.try_enter():
            return
        affordable = min(self.s.queue_s, left_s - (self.hold_s or 0.0))
        wait = self.expected_wait(self.queued)
        if wait > affordable:
            raise Overloaded(
                "expected_wait",
                f"switch overloaded: expected wait {wait * 1000:.0f} ms exceeds the "
                f"{max(affordable, 0.0) * 1000:.0f} ms this request can wait; retry later",
            )
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(fut)
        try:
            await asyncio.wait((fut,), timeout=affordable)
        except BaseException:
            self._abandon(fut)
            raise
        if not (fut.done() and not fut.cancelled()):
            self._abandon(fut)
            raise Overloaded(
                "queue_timeout",
                f"switch overloaded: no slot within {affordable * 1000:.0f} ms; retry later",
            )

    def _abandon(self, fut: asyncio.Future[None]) -> None:
        """A waiter gives up: if it was handed a slot meanwhile, the slot goes on."""
        if fut.done() and not fut.cancelled():
            self.in_flight -= 1
            self._dispatch()
        else:
            fut.cancel()
            with contextlib.suppress(ValueError):
                self._queue.remove(fut)

    def leave(self, total_s: float, own_s: float | None) -> None:
        """A terminal RPC is done: ``total_s`` it held the slot, ``own_s`` the switch's own
        part of it (None: no RTT sample, e.g. an RPC other than Authorize)."""
        self.in_flight -= 1
        self.hold_s = (
            total_s if self.hold_s is None else self.hold_s + EWMA * (total_s - self.hold_s)
        )
        if own_s is not None and self.limiter is not None:
            self.limiter.sample(own_s, self.in_flight + self.background + 1)
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand free slots to waiters: background first up to its share, then the queue."""
        while self._bg_queue and self.background < self.background_cap:
            fut = self._bg_queue.popleft()
            if not fut.done():
                self.background += 1
                fut.set_result(None)
        while self._queue and self.in_flight + self.background < self.limit:
            fut = self._queue.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)

    # --- background work --------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def background_slot(self) -> AsyncIterator[None]:
        """One store-and-forward attempt: waits while the background share is in use."""
        if self.background < self.background_cap and not self._bg_queue:
            self.background += 1
        else:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._bg_queue.append(fut)
            try:
                await fut
            except BaseException:
                if fut.done() and not fut.cancelled():
                    self.background -= 1
                    self._dispatch()
                else:
                    fut.cancel()
                    with contextlib.suppress(ValueError):
                        self._bg_queue.remove(fut)
                raise
        try:
            yield
        finally:
            self.background -= 1
            self._dispatch()

    # --- metrics --------------------------------------------------------------------
    def publish(self, m: metrics.Metrics) -> None:
        """Gauges read at scrape time, so the hot path pays nothing for them."""
        m.concurrency_limit.set_function(lambda: self.limit)
        m.in_flight.labels("terminal").set_function(lambda: self.in_flight)
        m.in_flight.labels("background").set_function(lambda: self.background)
        m.admission_queue.set_function(lambda: self.queued)
        limiter = self.limiter
        if limiter is not None:
            m.admission_rtt.labels("min").set_function(lambda: limiter.min_rtt or 0.0)
            m.admission_rtt.labels("recent").set_function(lambda: limiter.last_rtt or 0.0)
