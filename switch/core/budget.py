"""The time budget of one request: the terminal's gRPC deadline, capped at the card networks'
budget, less the margin the switch keeps for recording the outcome and answering.

Each hop gets ``remaining()``; nobody waits past the terminal's deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(slots=True)
class Budget:
    deadline: float  # time.monotonic() at which the terminal stops waiting (capped)
    margin_s: float

    @classmethod
    def start(cls, time_remaining: float | None, max_budget_s: float, margin_s: float) -> Budget:
        """``time_remaining`` is the gRPC context's (None when the caller set no deadline)."""
        allowed = max_budget_s if time_remaining is None else min(time_remaining, max_budget_s)
        return cls(time.monotonic() + allowed, margin_s)

    def remaining(self) -> float:
        """Seconds a downstream call may take, after keeping our own margin back."""
        return self.deadline - time.monotonic() - self.margin_s

    def left(self) -> float:
        """Seconds until the terminal's deadline, margin included."""
        return self.deadline - time.monotonic()

    def wall_deadline(self) -> float:
        """The deadline as Unix time, for records that recovery reads after a restart."""
        return time.time() + self.left()
