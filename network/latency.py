"""Simulated processing and network latency of a node, drawn from its topology distribution.

``lognormal`` is parameterised the way operators talk about latency: median and p99. With
``mu = ln(median)`` the p99 fixes ``sigma = ln(p99 / median) / z(0.99)``.
"""

from __future__ import annotations

import asyncio
import math
import random

from payswitch.world.topology import Latency

_Z99 = 2.3263478740408408  # standard normal quantile at 0.99


class LatencySampler:
    """Draws delays (seconds) from one node's distribution with its own seeded generator."""

    def __init__(self, latency: Latency, rng: random.Random) -> None:
        self._latency = latency
        self._rng = rng
        self._mu = math.log(latency.median_ms) if latency.median_ms > 0 else 0.0
        self._sigma = (
            math.log(latency.p99_ms / latency.median_ms) / _Z99
            if latency.distribution == "lognormal" and latency.median_ms > 0
            else 0.0
        )

    @property
    def active(self) -> bool:
        lat = self._latency
        return (
            (lat.distribution == "fixed" and lat.ms > 0)
            or (lat.distribution == "uniform" and lat.max_ms > 0)
            or (lat.distribution == "lognormal" and lat.median_ms > 0)
        )

    def sample_ms(self) -> float:
        lat = self._latency
        if lat.distribution == "uniform":
            return self._rng.uniform(lat.min_ms, lat.max_ms)
        if lat.distribution == "lognormal":
            return self._rng.lognormvariate(self._mu, self._sigma)
        return lat.ms

    async def delay(self, cap_s: float | None = None) -> None:
        """Sleep one sampled delay, never longer than ``cap_s``.

        The caller decides the cap; ``network.hop`` lets latency overrun the caller's
        deadline (gRPC cancels the call at the deadline) and only bounds the sleep.
        """
        if not self.active:
            return
        seconds = self.sample_ms() / 1000.0
        if cap_s is not None:
            seconds = min(seconds, max(cap_s, 0.0))
        if seconds > 0:
            await asyncio.sleep(seconds)
