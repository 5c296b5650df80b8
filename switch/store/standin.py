"""Stand-in usage in the store: the per-card cumulative total of stand-in approvals."""

from __future__ import annotations

import abc


class StandInStore(abc.ABC):
    """Per card, currency and window: the amount approved in stand-in, added atomically."""

    @abc.abstractmethod
    async def standin_reserve(
        self,
        card_token: str,
        currency: str,
        window_start: int,
        window_s: int,
        amount: int,
        limit: int,
    ) -> bool:
        """Add ``amount`` to the card's stand-in total of the window starting at
        ``window_start`` (Unix seconds, ``window_s`` long) unless that would exceed ``limit``;
        True when added. Atomic across every switch process on the store. Arguments are
        validated by ``switch.domain.standin.check_reserve`` first (ValueError)."""
