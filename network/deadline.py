"""Deadline arithmetic for a node that forwards: what is left of the caller's budget.

The budget is fixed once, when the request arrives, as an absolute monotonic instant, so
that time spent in simulated latency is charged against it. A caller that set no deadline
gets the card networks' 2-second budget: a node never forwards without a deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

# What a request without a gRPC deadline may use end to end (the networks' 2 s budget).
DEFAULT_BUDGET_S = 2.0


class HasTimeRemaining(Protocol):
    def time_remaining(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Budget:
    """The caller's deadline as a ``time.monotonic()`` instant."""

    deadline: float

    @classmethod
    def of(cls, context: HasTimeRemaining) -> Budget:
        remaining = context.time_remaining()
        if remaining is None:
            remaining = DEFAULT_BUDGET_S
        return cls(time.monotonic() + remaining)

    def remaining(self) -> float:
        """Seconds until the caller gives up (may be negative)."""
        return self.deadline - time.monotonic()

    def onward(self, margin_ms: float) -> float | None:
        """Timeout for the next hop: remaining minus our margin, or None if nothing is left."""
        left = self.remaining() - margin_ms / 1000.0
        return left if left > 0 else None
