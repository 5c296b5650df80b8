"""Idempotency keys: a terminal's key, its claim, and the answer it replays."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class IdemStatus(enum.StrEnum):
    IN_FLIGHT = "IN_FLIGHT"
    COMPLETED = "COMPLETED"


@dataclass(slots=True)
class IdempotencyRecord:
    """A claimed idempotency key, scoped to a terminal.

    ``fingerprint`` is a keyed digest of the request content without the key itself;
    ``response`` is the serialised protobuf answer once COMPLETED, replayed on retries.
    """

    scope: str  # the terminal id
    key: str
    operation: str  # "authorize", "capture", "void", "refund"
    fingerprint: str
    status: IdemStatus
    created_at: float
    expires_at: float
    transaction_id: str = ""
    response: bytes = b""


@dataclass(slots=True)
class Claim:
    """Result of claim_idempotency: ``claimed`` is True when this caller now owns the key;
    otherwise ``record`` is the existing claim (in flight or completed)."""

    claimed: bool
    record: IdempotencyRecord


@dataclass(frozen=True, slots=True)
class Answer:
    """An idempotency key to complete with the serialised answer to replay."""

    scope: str
    key: str
    response: bytes
