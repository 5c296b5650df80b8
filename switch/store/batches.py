"""Terminal batches in the state store: the records and the contract both backends keep.

Every terminal has exactly one open batch. A captured sale, an approved refund or an accepted
void *joins* the terminal's open batch once (``join_batch``, keyed by the transaction id: a
retry or a second switch joining the same transaction gets the batch it is already in);
``close_batch`` closes the open batch and opens the next one in one atomic step, so a join
racing a close lands in the closed batch or in the next one, never in both and never in
neither. Items carry what the totals need (kind, amount, currency, scheme), copied at join
time: a captured amount never changes afterwards.

SQLite does each step as one ``BEGIN IMMEDIATE`` transaction (``sqlite_batches``); Cassandra
keeps each batch's items in a partition of its own whose static column is the open batch
number, and joins and closes are lightweight transactions conditioned on it
(``cassandra_batches``, migration 014: no partition grows with the terminal's history).
"""

from __future__ import annotations

import abc

from switch.domain.batches import BatchInfo, BatchItem, ClosedBatch, ItemKind, Unbatched


class BatchStore(abc.ABC):
    """Terminal batches: joins and closes, atomic against each other."""

    @abc.abstractmethod
    async def join_batch(self, terminal_id: str, item: BatchItem, now: float) -> int:
        """Put ``item`` in the terminal's open batch unless its transaction is in a batch
        already; returns the number of the batch it is in. Opens batch 1 if none is open."""

    @abc.abstractmethod
    async def open_batch_no(self, terminal_id: str, now: float) -> int:
        """The number of the terminal's open batch (opening batch 1 if there is none)."""

    @abc.abstractmethod
    async def close_batch(
        self, terminal_id: str, now: float, *, with_items: bool = True
    ) -> ClosedBatch:
        """Close the open batch (even an empty one), open the next, return the closed one
        (without its items when ``with_items`` is False: the cut-off reads them in pages)."""

    @abc.abstractmethod
    async def batch_items(self, terminal_id: str, batch_no: int) -> list[BatchItem]:
        """The items of one batch (any state), in join order."""

    @abc.abstractmethod
    async def batch_items_page(
        self, terminal_id: str, batch_no: int, after: str, limit: int
    ) -> list[BatchItem]:
        """One page of a batch's items: at most ``limit``, by transaction id, those after
        ``after`` ("" for the first page); the back office reads a batch of any size this
        way, in bounded memory."""

    @abc.abstractmethod
    async def batches_of(self, terminal_id: str, limit: int = 50) -> list[BatchInfo]:
        """The terminal's closed or cleared batches, newest first (the open one is not kept
        as a record until it closes)."""

    @abc.abstractmethod
    async def closed_batches(self, limit: int) -> list[BatchInfo]:
        """Every terminal's CLOSED (not yet cleared) batches, at most ``limit``, by terminal
        then number: what the clearing step presents, read without any batch history."""

    @abc.abstractmethod
    async def mark_batch_cleared(self, terminal_id: str, batch_no: int) -> None:
        """Record that a closed batch went into a clearing file."""

    @abc.abstractmethod
    async def mark_unbatched(
        self, terminal_id: str, transaction_id: str, kind: ItemKind, now: float
    ) -> None:
        """Record a capture (SALE) or refund (REFUND) about to become batch material, or whose
        ``join_batch`` failed, so the cut-off's sweep reads only these, never every CAPTURED
        transaction (issue 17). One mark per transaction; marking again updates its time."""

    @abc.abstractmethod
    async def unbatched(self, limit: int) -> list[Unbatched]:
        """At most ``limit`` recorded unbatched transactions, oldest mark first."""

    @abc.abstractmethod
    async def clear_unbatched(self, transaction_id: str) -> None:
        """Forget one (it joined a batch, or is no longer batch material)."""
