"""Offline spends in the state store: first-writer-wins claims per (allowance, counter), the
cases settlement raises, and each terminal's upload mark (how far its journal was taken).

A claim is never replaced (SQLite: a primary key and INSERT OR IGNORE in one transaction;
Cassandra: ``INSERT ... IF NOT EXISTS``, a lightweight transaction), so two switch processes
settling two terminals' uploads of one cloned counter agree on which came first. The upload
mark only moves forward, so a broken upload resumes after the last entry settled.
"""

from __future__ import annotations

import abc

from switch.domain.offline import Claimed, OfflineCase, OfflineClaim


class OfflineStore(abc.ABC):
    @abc.abstractmethod
    async def claim_offline_spend(self, claim: OfflineClaim) -> Claimed:
        """Claim ``claim``'s counter: NEW when first, SAME when this digest holds it, CONFLICT
        (with the holder) when another does. Durable on return."""

    @abc.abstractmethod
    async def offline_claims(self, allowance_id: str) -> list[OfflineClaim]:
        """Every claim of one allowance, by counter."""

    @abc.abstractmethod
    async def record_offline_case(self, case: OfflineCase) -> bool:
        """Keep ``case`` unless one with its id exists; True when it is new."""

    @abc.abstractmethod
    async def offline_cases(self) -> list[OfflineCase]:
        """Every case, by id."""

    @abc.abstractmethod
    async def offline_upload_mark(self, terminal_id: str) -> int:
        """The last journal sequence number settled for ``terminal_id`` (0 when none)."""

    @abc.abstractmethod
    async def advance_offline_upload_mark(self, terminal_id: str, seq: int) -> int:
        """Move the mark to ``seq`` unless it is already past it; the mark after."""
