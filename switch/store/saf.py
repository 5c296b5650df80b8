"""The store-and-forward queue's records and the store methods both backends implement.

An item is one message the switch owes the network (a reversal, an advice), keyed by
``<kind>:<transaction id>`` so that enqueueing is idempotent in every backend: the primary key
decides. Every change of an item is a compare-and-set computed by one of the pure functions
below (``take_lease``, ``after_attempt``, ``replayed``, ``rearmed``, ``settled``): the
backends only differ in how they make read-compute-write atomic (SQLite: one transaction;
Cassandra: an LWT on the item's ``version``), so both queues behave the same by construction.

Lifecycle: live (``dead`` False, ``done`` False) -> done (acknowledged: kept for audit) or
dead (a dead letter: kept, listed, replayable -> live again). A live item may carry a lease
(``leased_by`` until ``lease_until``): the one worker that may send it now.
"""

from __future__ import annotations

from switch.domain.saf import Change, SafItem


class SafStore:
    """The queue's part of the Store interface (mixed into ``Store``). Not abstract, so that a
    backend without it still loads; the switch then cannot queue (reversals fall back to the
    recovery scan of transaction states)."""

    async def saf_put(self, item: SafItem) -> SafItem:
        """Insert ``item`` unless an item with its id exists; an existing delivered item is
        re-armed (``rearmed``). Durable before it returns. Returns the item as stored."""
        raise NotImplementedError(f"{type(self).__name__} has no store-and-forward queue")

    async def saf_get(self, item_id: str) -> SafItem | None:
        raise NotImplementedError(f"{type(self).__name__} has no store-and-forward queue")

    async def saf_update(self, item_id: str, change: Change) -> SafItem | None:
        """Apply ``change`` to the item atomically (compare-and-set): the new item, or None
        when ``change`` returned None (nothing written). KeyError for an unknown id; whatever
        ``change`` raises propagates with nothing written."""
        raise NotImplementedError(f"{type(self).__name__} has no store-and-forward queue")

    async def saf_list(
        self, dead: bool, limit: int = 100, due_before: float | None = None
    ) -> list[SafItem]:
        """Dead letters (``dead``) or live items (neither dead nor delivered), earliest
        ``next_attempt_at`` first, at most ``limit``; ``due_before`` keeps only items due by
        then."""
        raise NotImplementedError(f"{type(self).__name__} has no store-and-forward queue")

    async def saf_depths(self) -> dict[tuple[str, bool], int]:
        """Items waiting by (kind, dead): the ``saf_depth`` / ``dlq_depth`` gauges."""
        raise NotImplementedError(f"{type(self).__name__} has no store-and-forward queue")
