"""The fee table: interchange and scheme fees of one presentment, in integer minor units.

Written by helper "ledger" to the fixed interface of the settlement issue (helper "batch" owns
the module; the integrator keeps one). Topology ``[[fees]]`` entries::

    {scheme, mcc = "*", currency, interchange_bps, interchange_fixed_minor,
     scheme_fee_bps, scheme_fee_fixed_minor}

Lookup: the entry for (scheme, mcc, currency) if there is one, else (scheme, "*", currency),
else no fees (zero; as helper "batch"'s version, so both agree). Fees never convert currencies.
Rounding: each fee is ``amount * bps / 10_000`` rounded half-up on the minor unit, with integer
arithmetic only (``(amount * bps + 5_000) // 10_000``), plus the fixed part.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from payswitch.money import exponent

WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class FeeRule:
    """One ``[[fees]]`` entry (the same fields, in the same order, as the topology's)."""

    scheme: str
    mcc: str
    currency: str
    interchange_bps: int = 0
    interchange_fixed_minor: int = 0
    scheme_fee_bps: int = 0
    scheme_fee_fixed_minor: int = 0

    def __post_init__(self) -> None:
        exponent(self.currency)
        for name in (
            "interchange_bps",
            "interchange_fixed_minor",
            "scheme_fee_bps",
            "scheme_fee_fixed_minor",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"fees.{name} must be a non-negative integer")


@dataclass(frozen=True, slots=True)
class Fees:
    interchange_minor: int
    scheme_fee_minor: int

    @property
    def total_minor(self) -> int:
        return self.interchange_minor + self.scheme_fee_minor


FeeTable = Sequence[Any]  # FeeRule or any object with its fields


def parse_table(entries: Iterable[Mapping[str, object]]) -> tuple[FeeRule, ...]:
    """``[[fees]]`` topology entries as rules (ValueError naming the bad field)."""
    rules = []
    for i, entry in enumerate(entries):
        try:
            rules.append(FeeRule(**{"mcc": WILDCARD, **entry}))  # type: ignore[arg-type]
        except TypeError as exc:
            raise ValueError(f"fees[{i}]: {exc}") from None
    return tuple(rules)


def _bps(amount_minor: int, bps: int) -> int:
    return (amount_minor * bps + 5_000) // 10_000


def fee_for(table: FeeTable, scheme: str, mcc: str, currency: str, amount_minor: int) -> Fees:
    """Interchange and scheme fee of one presentment of ``amount_minor`` (>= 0); zero fees
    when no entry prices it."""
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool) or amount_minor < 0:
        raise ValueError("amount_minor must be a non-negative integer")
    scheme = scheme.lower()
    exact = wild = None
    for rule in table:
        if rule.scheme == scheme and rule.currency == currency:
            if rule.mcc == mcc:
                exact = rule
            elif rule.mcc == WILDCARD and wild is None:
                wild = rule
    rule = exact or wild
    if rule is None:
        return Fees(0, 0)
    return Fees(
        _bps(amount_minor, rule.interchange_bps) + rule.interchange_fixed_minor,
        _bps(amount_minor, rule.scheme_fee_bps) + rule.scheme_fee_fixed_minor,
    )
