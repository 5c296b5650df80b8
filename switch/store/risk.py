"""Risk state in the store: velocity counters, sightings and the decisions of the risk stage.

Counters are shared by every switch process on the store: adding is atomic (SQLite: an upsert
under the write lock; Cassandra: counter columns, no read-modify-write), so two processes
serving one card see one velocity. Reading and adding are two steps on Cassandra: requests of
one card in flight at the same moment on two processes may not see each other (each sees all
that finished before it started). See ``switch.domain.risk`` for subjects and buckets.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence

from switch.domain.errors import StoreError
from switch.domain.risk import (
    History,
    ListedCard,
    Observation,
    Observing,
    RiskRecord,
    RiskReview,
    Tally,
)


class RiskStore(abc.ABC):
    """Counters, sightings and risk decisions."""

    @abc.abstractmethod
    async def risk_observe(self, obs: Observation, now: float) -> History:
        """Read the buckets of ``obs.subjects`` (minute buckets of the last hour, hour buckets
        of the last day) and the live sightings of ``obs.seen_of`` as they were, then add
        ``obs.tallies`` to the minute and hour buckets of ``now`` and record
        ``obs.sightings`` at ``now``. ValueError for malformed input (nothing written)."""

    @abc.abstractmethod
    async def risk_add(self, tallies: Sequence[Tally], now: float) -> None:
        """Add ``tallies`` to the buckets of ``now`` (an outcome known later: a decline)."""

    @abc.abstractmethod
    async def put_risk_decision(self, record: RiskRecord) -> None:
        """Keep the decision of transaction ``record.tx_id`` (replaces an earlier one)."""

    @abc.abstractmethod
    async def get_risk_decision(self, tx_id: str) -> RiskRecord | None:
        """The decision kept for ``tx_id``, or None."""

    # --- the review queue and the operators' lists ---------------------------------------
    @abc.abstractmethod
    async def put_risk_review(self, review: RiskReview) -> None:
        """Queue ``review`` for an operator (idempotent by transaction id)."""

    @abc.abstractmethod
    async def risk_reviews(self, limit: int) -> list[RiskReview]:
        """The open reviews, oldest first, at most ``limit``."""

    @abc.abstractmethod
    async def resolve_risk_review(
        self, tx_id: str, verdict: str, now: float
    ) -> tuple[RiskReview, ListedCard] | None:
        """Close the open review of ``tx_id`` with ``verdict`` ("fraud": the card token goes
        on the block list; "false_positive": on the allow list). None when there is no open
        review (unknown, or resolved already: only one operator's verdict counts).
        ValueError for an unknown verdict."""

    @abc.abstractmethod
    async def risk_listed(self) -> list[ListedCard]:
        """Every listed card (a short list, read whole by every switch on a period)."""


async def observe_within(store: RiskStore, risk: Observing, now: float) -> None:
    """``store.risk_observe`` for an intent's ``risk``, within its slice: ``risk.history`` when
    it answered in time, else ``risk.failed`` ("timeout" or "store"); never raises, for the
    intent stands either way (the risk stage's fallback then decides)."""
    try:
        risk.history = await asyncio.wait_for(
            store.risk_observe(risk.observation, now), risk.slice_s
        )
    except TimeoutError:
        risk.failed = "timeout"
    except StoreError as exc:
        risk.failed, risk.error = "store", type(exc).__name__
