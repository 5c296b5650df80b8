"""Shared checks of ``Store.standin_reserve`` (both backends)."""

from __future__ import annotations


def check_reserve(card_token: str, currency: str, amount: int, limit: int) -> None:
    if not card_token or not currency:
        raise ValueError("standin_reserve: card_token and currency are required")
    for name, value in (("amount", amount), ("limit", limit)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"standin_reserve: {name} must be an int >= 0 (minor units)")
