"""The fee table: interchange and scheme fees of one presentment, in its own currency.

Rules come from the topology's ``[[fees]]`` entries (``payswitch.world.settlement.FeeConfig``).
A presentment takes the rule of its (scheme, MCC, currency); without one, the rule of
(scheme, "*", currency); without that, no fees (zero). Fees never convert currencies.

Arithmetic is on integers only. A basis-point fee is ``amount * bps / 10_000`` rounded half
up on the minor unit: ``(amount * bps + 5_000) // 10_000``, so 0.5 of a minor unit rounds up
(1 cent of a 1.00 EUR sale at 50 bps) and anything below it rounds down. The fixed part is
then added as is. Amounts are non-negative (refunds are presented with their positive
amount); the acquirer and the ledger call this same function, so they agree to the unit.
``table`` is any iterable of rows with the ``[[fees]]`` fields (``FeeConfig`` from the
topology, or the ledger's own rows).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from payswitch.world.settlement import FeeConfig

BPS = 10_000


@dataclass(frozen=True, slots=True)
class Fees:
    interchange_minor: int
    scheme_fee_minor: int

    @property
    def total_minor(self) -> int:
        return self.interchange_minor + self.scheme_fee_minor


NO_FEES = Fees(0, 0)


def bps_of(amount_minor: int, bps: int) -> int:
    """``amount * bps / 10_000`` rounded half up to the minor unit (integers only)."""
    if amount_minor < 0 or bps < 0:
        raise ValueError("fees: amount and basis points must not be negative")
    return (amount_minor * bps + BPS // 2) // BPS


def rule_for(table: Iterable[FeeConfig], scheme: str, mcc: str, currency: str) -> FeeConfig | None:
    scheme = scheme.lower()
    fallback = None
    for rule in table:
        if rule.scheme != scheme or rule.currency != currency:
            continue
        if rule.mcc == mcc:
            return rule
        if rule.mcc == "*":
            fallback = rule
    return fallback


def fee_for(
    table: Iterable[FeeConfig], scheme: str, mcc: str, currency: str, amount_minor: int
) -> Fees:
    """Interchange and scheme fee of one presentment of ``amount_minor`` (see module doc)."""
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool):
        raise ValueError("fees: amount_minor must be an int (minor units)")
    rule = rule_for(table, scheme, mcc, currency)
    if rule is None:
        return NO_FEES
    return Fees(
        interchange_minor=bps_of(amount_minor, rule.interchange_bps) + rule.interchange_fixed_minor,
        scheme_fee_minor=bps_of(amount_minor, rule.scheme_fee_bps) + rule.scheme_fee_fixed_minor,
    )


def presentment_fees(
    table: Iterable[FeeConfig],
    kind: str,
    scheme: str,
    mcc: str,
    currency: str,
    amount_minor: int,
) -> Fees:
    """Fees of one presentment of ``kind`` (CAPTURE or REFUND): the one rule the acquirer's
    report, the switch's ledger and the reconciliation share. A refund carries no fees: the
    merchant is not charged for giving money back (and the interchange of its sale is not
    returned either)."""
    if kind == "REFUND":
        return NO_FEES
    return fee_for(table, scheme, mcc, currency, amount_minor)
