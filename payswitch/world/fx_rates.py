"""The topology's FX part: each scheme's daily rate tables and the DCC offer's terms.

Why here: the scheme node converts with its tables, the switch quotes DCC from the same
tables, and both read them from the one topology file. A table in TOML::

    [[schemes.rates]]
    version = "visanet-2026-12-07"   # named on the wire and in clearing files
    effective = "2026-12-07"         # UTC day from which it applies (text: YYYY-MM-DD)
    base = "EUR"
    quotes = { USD = "1.08250000", JPY = "161.37" }   # units per one base; text, never floats

and ``[fx] dcc_markup_bps = 300`` (0 turns DCC offers off).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from payswitch.fx import FxError, RateTable, parse_rate


class RatesError(ValueError):
    """A rate table the topology cannot accept."""


def parse_tables(raw: Any, where: str) -> tuple[RateTable, ...]:
    """The ``rates`` array of one scheme; versions must be unique."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise RatesError(f"{where}: rates must be an array of tables")
    tables: list[RateTable] = []
    for n, t in enumerate(raw):
        here = f"{where}: rates[{n}]"
        if not isinstance(t, dict):
            raise RatesError(f"{here} must be a table")
        effective = t.get("effective")
        if isinstance(effective, str):
            try:
                effective = date.fromisoformat(effective)
            except ValueError:
                raise RatesError(f"{here}: effective must be a date (YYYY-MM-DD)") from None
        if not isinstance(effective, date):
            raise RatesError(f"{here}: effective must be a date (YYYY-MM-DD)")
        quotes = t.get("quotes", {})
        if not isinstance(quotes, dict):
            raise RatesError(f'{here}: quotes must be a table of currency = "rate"')
        parsed: list[tuple[str, Decimal]] = []
        for currency, text in sorted(quotes.items()):
            if not isinstance(text, str):
                raise RatesError(f"{here}: quotes.{currency} must be a string (exact decimal)")
            try:
                parsed.append((currency, parse_rate(text, f"quotes.{currency}")))
            except FxError as exc:
                raise RatesError(f"{here}: {exc}") from None
        try:
            tables.append(
                RateTable(str(t.get("version", "")), effective, str(t.get("base", "")),
                          tuple(parsed))
            )  # fmt: skip
        except FxError as exc:
            raise RatesError(f"{here}: {exc}") from None
    versions = [t.version for t in tables]
    if len(set(versions)) != len(versions):
        raise RatesError(f"{where}: rate table versions must be unique")
    return tuple(tables)


def parse_markup(doc: dict[str, Any]) -> int:
    """``[fx] dcc_markup_bps``: 0..1000, default 0 (no DCC offers)."""
    raw = doc.get("fx", {})
    value = raw.get("dcc_markup_bps", 0) if isinstance(raw, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
        raise RatesError("fx: dcc_markup_bps must be an integer within 0..1000")
    return value
