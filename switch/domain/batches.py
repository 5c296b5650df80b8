"""Terminal batches: their items, states and the batch a close hands back.

Every terminal has exactly one open batch. A captured sale, an approved refund or an accepted
void *joins* the terminal's open batch once (keyed by the transaction id); closing a batch
opens the next one in the same atomic step (``switch.store.batches.BatchStore``). Items carry
what the totals need (kind, amount, currency, scheme), copied at join time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ItemKind(enum.StrEnum):
    SALE = "SALE"  # a captured authorization (amount: the captured amount)
    REFUND = "REFUND"  # an approved refund
    VOID = "VOID"  # an accepted void (counted, no money)


class BatchState(enum.StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"  # totals final; waiting for the clearing run
    CLEARED = "CLEARED"  # presented in a clearing file


@dataclass(frozen=True, slots=True)
class BatchItem:
    transaction_id: str
    kind: ItemKind
    amount_minor: int
    currency: str
    scheme: str
    joined_at: float
    batch_no: int = 0


@dataclass(frozen=True, slots=True)
class BatchInfo:
    terminal_id: str
    batch_no: int
    state: BatchState
    opened_at: float
    closed_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Unbatched:
    """A capture or refund marked before its transition, not joined since (its process died, or
    the store failed at the join): the cut-off's sweep joins it
    (``switch.backoffice.batches.sweep``) and forgets it."""

    terminal_id: str
    transaction_id: str
    kind: ItemKind
    marked_at: float


@dataclass(frozen=True, slots=True)
class ClosedBatch:
    """What ``close_batch`` closed: the batch and every item in it (final)."""

    info: BatchInfo
    items: tuple[BatchItem, ...]


def check_item(item: BatchItem) -> None:
    """Validate an item before any backend writes it (both backends share this)."""
    if not item.transaction_id:
        raise ValueError("join_batch: transaction_id is required")
    ItemKind(item.kind)
    if not isinstance(item.amount_minor, int) or isinstance(item.amount_minor, bool):
        raise ValueError("join_batch: amount_minor must be an int (minor units)")
    if item.amount_minor < 0:
        raise ValueError("join_batch: amount_minor must not be negative")
