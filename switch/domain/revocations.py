"""A revoked terminal: refused at admission by every switch on the store."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Revocation:
    terminal_id: str
    reason: str
    revoked_at: float


def check_terminal_id(terminal_id: str) -> None:
    if not terminal_id or len(terminal_id) > 64:
        raise ValueError("terminal_id must be 1-64 characters")
