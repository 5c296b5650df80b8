"""The store-and-forward queue's records, and every change of an item as a pure function.

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

import dataclasses
import enum
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict, Unpack


class SafKind(enum.StrEnum):
    REVERSAL = "REVERSAL"
    ADVICE = "ADVICE"
    OFFLINE_ADVICE = "OFFLINE_ADVICE"  # an accepted offline spend owed to its issuer


@dataclass(slots=True)
class SafItem:
    """One store-and-forward item. The first eight fields are the shared interface; the rest
    is bookkeeping of the queue (delivery, lease, compare-and-set version)."""

    id: str
    kind: SafKind
    transaction_id: str
    attempts: int
    created_at: float
    next_attempt_at: float
    last_error: str
    dead: bool
    done: bool = False
    leased_by: str = ""
    lease_until: float = 0.0
    version: int = 1

    def copy(self, **changes: Unpack[SafFields]) -> SafItem:
        return dataclasses.replace(self, **changes)

    @property
    def live(self) -> bool:
        return not self.dead and not self.done


class SafFields(TypedDict, total=False):
    """Fields of a ``SafItem`` by name, any of them (``SafItem.copy``'s changes)."""

    id: str
    kind: SafKind
    transaction_id: str
    attempts: int
    created_at: float
    next_attempt_at: float
    last_error: str
    dead: bool
    done: bool
    leased_by: str
    lease_until: float
    version: int


# Columns of an item in declaration order (both backends map rows by these names).
SAF_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(SafItem))
MAX_ERROR_CHARS = 300


def item_id(kind: SafKind | str, transaction_id: str) -> str:
    return f"{SafKind(kind).value}:{transaction_id}"


def new_item(kind: SafKind | str, transaction_id: str, now: float) -> SafItem:
    if not transaction_id:
        raise ValueError("saf: transaction_id is required")
    kind = SafKind(kind)
    return SafItem(item_id(kind, transaction_id), kind, transaction_id, 0, now, now, "", False)


@dataclass(frozen=True, slots=True)
class Backoff:
    """When an item that failed is tried again, and when it is given up (dead-lettered)."""

    max_attempts: int = 10
    max_age_s: float = 86_400.0
    base_delay_s: float = 0.5
    max_delay_s: float = 60.0

    def delay(self, attempts: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^(attempts-1))] (AWS's "full jitter"
        spreads retries of many items failed by one outage instead of synchronising them)."""
        return rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** max(attempts - 1, 0)))


# --- the compare-and-set steps (pure: the store applies them atomically) ------------------
Change = Callable[[SafItem], SafItem | None]  # None: leave the item as it is


def rearmed(existing: SafItem, fresh: SafItem) -> SafItem | None:
    """Enqueue onto an existing item: a delivered one is armed again (a new message is owed,
    e.g. a void after a late confirmation); a live or dead one stays as it is (idempotent: a
    dead letter waits for an operator, not for the next recovery sweep)."""
    if not existing.done:
        return None
    return fresh.copy(version=existing.version)


def take_lease(owner: str, until: float, now: float) -> Change:
    def change(item: SafItem) -> SafItem | None:
        if not item.live or item.next_attempt_at > now:
            return None
        if item.leased_by and item.leased_by != owner and item.lease_until > now:
            return None
        return item.copy(leased_by=owner, lease_until=until)

    return change


def after_attempt(
    owner: str,
    delivered: bool,
    error: str,
    now: float,
    backoff: Backoff,
    rng: random.Random,
    final: bool = False,
) -> Change:
    """Record one attempt by the lease holder ``owner`` and release the lease. ``final``: the
    far end refused for good (an issuer's refusal of an advice): dead at once, never retried."""

    def change(item: SafItem) -> SafItem | None:
        if item.leased_by != owner or not item.live:
            return None  # our lease was taken over: the new holder records its own attempt
        attempts = item.attempts + 1
        if delivered:
            return item.copy(
                attempts=attempts, done=True, last_error="", leased_by="", lease_until=0.0
            )
        give_up = (
            final or attempts >= backoff.max_attempts or now - item.created_at >= backoff.max_age_s
        )
        return item.copy(
            attempts=attempts,
            dead=give_up,
            next_attempt_at=now if give_up else now + backoff.delay(attempts, rng),
            last_error=error[:MAX_ERROR_CHARS],
            leased_by="",
            lease_until=0.0,
        )

    return change


def release(owner: str) -> Change:
    """Give a lease back without counting an attempt (shutdown, no handler)."""

    def change(item: SafItem) -> SafItem | None:
        if item.leased_by != owner:
            return None
        return item.copy(leased_by="", lease_until=0.0)

    return change


def settled(now: float) -> Change:
    """The message is no longer owed: its writer got the far end's answer itself (a void's
    reversal answered in the request). Done without an attempt; an item a worker holds now is
    left to that worker (its handler finds nothing left to do)."""

    def change(item: SafItem) -> SafItem | None:
        if not item.live or (item.leased_by and item.lease_until > now):
            return None
        return item.copy(done=True, last_error="", leased_by="", lease_until=0.0)

    return change


def replayed(now: float) -> Change:
    """An operator's replay of a dead letter: live again, attempts and age reset, due now.
    Raises ValueError for an item that is not dead."""

    def change(item: SafItem) -> SafItem | None:
        if not item.dead:
            raise ValueError(f"saf item {item.id} is not a dead letter")
        return item.copy(
            dead=False,
            attempts=0,
            created_at=now,
            next_attempt_at=now,
            leased_by="",
            lease_until=0.0,
        )

    return change
