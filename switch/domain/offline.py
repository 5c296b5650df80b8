"""Offline spends at settlement: the claim of one (allowance, counter), the outcome of a claim,
and a case (a conflict with its evidence and who bears it).

A claim is first-writer-wins: the store keeps the first spend digest claimed for a counter
and never replaces it; a second claim with the same digest is the same spend uploaded again
(harmless), with another digest a conflict (the device was cloned).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HEX = re.compile(r"[0-9a-f]{64}")


class ClaimOutcome(enum.StrEnum):
    NEW = "new"  # ours: the first claim of this counter
    SAME = "same"  # this very spend was claimed before (an upload repeated)
    CONFLICT = "conflict"  # another spend holds the counter


@dataclass(frozen=True, slots=True)
class OfflineClaim:
    allowance_id: str
    counter: int
    digest: str  # hex SHA-256 of the spend's canonical bytes
    terminal_id: str
    amount: int
    prev_hash: str  # hex, the chain link the spend names
    claimed_at: float

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.allowance_id):
            raise ValueError("allowance_id: must be 1-64 characters of [A-Za-z0-9._-]")
        if not 1 <= self.counter <= 1_000_000:
            raise ValueError("counter: out of range")
        if not _HEX.fullmatch(self.digest) or not _HEX.fullmatch(self.prev_hash):
            raise ValueError("digest: must be 64 lower-case hex digits")


@dataclass(frozen=True, slots=True)
class Claimed:
    outcome: ClaimOutcome
    holder: OfflineClaim  # the claim the store holds for the counter (ours when NEW/SAME)


@dataclass(frozen=True, slots=True)
class OfflineCase:
    """A conflict: which spend, what was wrong, who bears it, and the evidence (JSON text:
    the spend and allowance bytes, the claim it conflicts with). ``case_id`` is derived from
    the spend and the problem, so recording it again changes nothing."""

    case_id: str
    allowance_id: str
    counter: int
    digest: str
    terminal_id: str
    problems: tuple[str, ...]
    liability: str  # "merchant" | "cardholder"
    paid: bool  # the merchant is paid (the cardholder bears it) or not
    amount: int
    currency: str
    evidence: str
    created_at: float
