"""Network identifiers (RRN, network STAN) from a store-backed hi/lo sequence.

Each switch process takes a block of ``block`` numbers with one store call and hands them out
locally, so numbering is unique across processes and restarts at the cost of gaps.
"""

from __future__ import annotations

import asyncio

from switch.store.base import Store


class BlockSequence:
    def __init__(self, store: Store, name: str, block: int = 1000) -> None:
        self._store = store
        self._name = name
        self._block = block
        self._next = 0
        self._end = 0
        self._lock = asyncio.Lock()

    async def next(self) -> int:
        if self._next >= self._end:
            async with self._lock:
                if self._next >= self._end:
                    hi = await self._store.next_sequence(self._name)
                    self._next, self._end = hi * self._block, (hi + 1) * self._block
        value = self._next
        self._next += 1
        return value


def rrn_of(n: int) -> str:
    """ISO 8583 field 37: twelve characters."""
    return f"{n % 10**12:012d}"


def network_stan_of(n: int) -> int:
    """ISO 8583 field 11 on the acquirer link: 1..999999."""
    return n % 999_999 + 1
