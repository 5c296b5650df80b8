"""The cut-off clock a back-office request carries (``now_ms``), judged the same way by every
back office.

The caller names the cut-off instant so that a run that starts late still judges hold expiry
and late presentment as of the cut-off, not as of when it got round to it. So a caller may set
the clock back; it may not set it forward past the node's own clock by more than a small skew:
a far-future clock would release every hold (``ExpireHolds``) and flag every presentment late.
"""

from __future__ import annotations

import time

# Clock skew allowed between the caller and the node (NTP-synchronised hosts stay far inside it).
MAX_AHEAD_S = 300.0


def cutoff_clock(
    now_ms: int, *, now: float | None = None, max_ahead_s: float = MAX_AHEAD_S
) -> float:
    """Seconds since the epoch for ``now_ms`` (0: the node's own clock).

    Raises ValueError naming ``now_ms`` when it is negative or more than ``max_ahead_s`` ahead
    of this node's clock (``now``, default ``time.time()``)."""
    clock = time.time() if now is None else now
    if now_ms == 0:
        return clock
    if now_ms < 0:
        raise ValueError("now_ms: Unix milliseconds, or 0 for the node's own clock")
    at = now_ms / 1000
    if at > clock + max_ahead_s:
        raise ValueError(f"now_ms: more than {max_ahead_s:g} s ahead of this node's clock")
    return at
