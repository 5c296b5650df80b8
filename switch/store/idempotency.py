"""Idempotency keys in the store: claimed once, completed with the answer to replay."""

from __future__ import annotations

import abc

from switch.domain.idempotency import Claim, IdempotencyRecord


class IdempotencyStore(abc.ABC):
    """A terminal's idempotency keys, scoped by terminal id."""

    # --- idempotency keys -----------------------------------------------------------
    @abc.abstractmethod
    async def claim_idempotency(
        self, scope: str, key: str, operation: str, fingerprint: str, ttl_s: float, now: float
    ) -> Claim:
        """Atomically claim (scope, key) as IN_FLIGHT, or return the existing live record.

        A record with ``expires_at <= now`` counts as absent (Cassandra expires it by TTL)
        and is replaced by the new claim; ``expires_at`` = ``now + ttl_s``.
        """

    @abc.abstractmethod
    async def attach_transaction(self, scope: str, key: str, transaction_id: str) -> None:
        """Record which transaction an in-flight key created (for lookups and recovery).
        Raises NotFound when the key is not IN_FLIGHT (no record, or completed already: a
        request that outlived its key's abandonment must not act under it)."""

    @abc.abstractmethod
    async def complete_idempotency(
        self, scope: str, key: str, response: bytes, transaction_id: str
    ) -> None:
        """Mark the key COMPLETED with the serialised answer to replay. Raises NotFound when
        the key is not IN_FLIGHT (released, never claimed, or completed already): the first
        answer is final, whoever completes later (a stalled holder, a second retry settling
        an abandoned key) cannot replace it."""

    @abc.abstractmethod
    async def get_idempotency(self, scope: str, key: str, now: float) -> IdempotencyRecord | None:
        """The live record for (scope, key), or None."""

    @abc.abstractmethod
    async def release_idempotency(self, scope: str, key: str) -> None:
        """Drop an IN_FLIGHT claim whose request ended without any effect (e.g. the store
        refused the intent), so that a retry can claim it again. A COMPLETED record is never
        dropped (its answer must keep replaying); a missing key is not an error."""
