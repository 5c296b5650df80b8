"""The store-and-forward queue in the store.

Every change of an item is a compare-and-set computed by one of the pure functions of
``switch.domain.saf`` (``take_lease``, ``after_attempt``, ``replayed``, ``rearmed``,
``settled``): the backends only differ in how they make read-compute-write atomic (SQLite: one
transaction; Cassandra: an LWT on the item's ``version``), so both queues behave the same by
construction.
"""

from __future__ import annotations

import abc

from switch.domain.saf import Change, SafItem


class SafStore(abc.ABC):
    """The store-and-forward queue: items owed to the network, live, done or dead letters."""

    @abc.abstractmethod
    async def saf_put(self, item: SafItem) -> SafItem:
        """Insert ``item`` unless an item with its id exists; an existing delivered item is
        re-armed (``rearmed``). Durable before it returns. Returns the item as stored."""

    @abc.abstractmethod
    async def saf_get(self, item_id: str) -> SafItem | None: ...

    @abc.abstractmethod
    async def saf_update(self, item_id: str, change: Change) -> SafItem | None:
        """Apply ``change`` to the item atomically (compare-and-set): the new item, or None
        when ``change`` returned None (nothing written). KeyError for an unknown id; whatever
        ``change`` raises propagates with nothing written."""

    @abc.abstractmethod
    async def saf_list(
        self, dead: bool, limit: int = 100, due_before: float | None = None
    ) -> list[SafItem]:
        """Dead letters (``dead``) or live items (neither dead nor delivered), earliest
        ``next_attempt_at`` first, at most ``limit``; ``due_before`` keeps only items due by
        then."""

    @abc.abstractmethod
    async def saf_depths(self) -> dict[tuple[str, bool], int]:
        """Items waiting by (kind, dead): the ``saf_depth`` / ``dlq_depth`` gauges."""
