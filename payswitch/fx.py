"""Currency conversion: a scheme's daily rate table, conversion with explicit rounding, DCC quotes.

Why it is shared: the scheme converts an authorization into the cardholder's billing currency
(ISO 8583 fields 6, 10 and 51 in spirit), the issuer converts the later steps of the same sale
with the rate the authorization carried, and the switch offers dynamic currency conversion
(DCC); all must round the same way to the minor unit.

Rules (documented in the README, "Cross-border payments"):
- A rate is an exact ``Decimal`` with ``RATE_PLACES`` (8) decimal places: units of the target
  currency per one unit of the source currency, both in major units. Never a float.
- A table quotes every currency against one base currency; a cross rate is
  ``quote[target] / quote[source]`` rounded half-up to 8 places once, and that rounded rate is
  the one applied and carried on the wire.
- A converted amount is rounded half-up to the target currency's ISO 4217 exponent
  (JPY 0, EUR 2, KWD 3), once per conversion.
- Partial steps (captures, refunds) are converted cumulatively: the running total is converted
  and what was already converted is subtracted (``allocate``), so the parts always add up to
  the conversion of the whole: no minor unit is created or lost by splitting a sale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from payswitch.money import MAX_MINOR_UNITS, MoneyError, exponent, is_currency

RATE_PLACES = 8
_RATE_QUANTUM = Decimal(1).scaleb(-RATE_PLACES)
# The largest markup a DCC offer may carry (basis points): card network rules cap it.
MAX_MARKUP_BPS = 1000


class FxError(ValueError):
    """A rate or conversion that cannot be made; ``field`` names what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_rate(text: str, field: str = "rate") -> Decimal:
    """A rate from its decimal text ("1.08250000"): positive, at most 8 decimal places."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise FxError(field, f"not a decimal rate: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise FxError(field, "a rate must be a positive finite decimal")
    if value != value.quantize(_RATE_QUANTUM, rounding=ROUND_HALF_UP):
        raise FxError(field, f"a rate has at most {RATE_PLACES} decimal places")
    return value.quantize(_RATE_QUANTUM)


def format_rate(rate: Decimal) -> str:
    """The wire and file form of a rate: always 8 decimal places, e.g. ``1.08250000``."""
    return str(rate.quantize(_RATE_QUANTUM, rounding=ROUND_HALF_UP))


def convert(minor_units: int, source: str, target: str, rate: Decimal) -> int:
    """``minor_units`` of ``source`` in minor units of ``target`` at ``rate``, half-up."""
    if source == target:
        return minor_units
    scaled = Decimal(minor_units).scaleb(exponent(target) - exponent(source)) * rate
    result = int(scaled.to_integral_value(rounding=ROUND_HALF_UP))
    if abs(result) > MAX_MINOR_UNITS:
        raise FxError("amount", "converted amount exceeds the 12-digit ISO 8583 maximum")
    return result


def allocate(done: int, part: int, source: str, target: str, rate: Decimal) -> int:
    """The converted share of ``part`` after ``done`` (both in ``source``) was converted.

    ``convert(done + part) - convert(done)``: the shares of any split add up to the converted
    whole, which rounding each part on its own would not guarantee.
    """
    return convert(done + part, source, target, rate) - convert(done, source, target, rate)


def convert_back(part: int, billed_whole: int, whole: int) -> int:
    """The share of ``whole`` (transaction currency) that ``part`` of its conversion
    ``billed_whole`` (billing currency) stands for, half-up: a chargeback raised in the billing
    currency converted back at the sale's own effective rate, so charging back the whole
    billed amount gives back exactly the whole transaction amount."""
    if billed_whole <= 0 or part < 0 or part > billed_whole:
        raise FxError("amount", "a share must be within the billed amount")
    share = Decimal(part) * Decimal(whole) / Decimal(billed_whole)
    return int(share.to_integral_value(rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class Conversion:
    """What a converted authorization carries past the scheme (ISO 8583 fields 6, 10, 51)."""

    billing_minor: int
    billing_currency: str
    rate: Decimal
    table_version: str


@dataclass(frozen=True, slots=True)
class RateTable:
    """A scheme's published rates for one day: ``quotes[c]`` units of c per one ``base``.

    ``version`` names the table on the wire and in clearing files; ``effective`` is the day
    (UTC) from which it applies.
    """

    version: str
    effective: date
    base: str
    quotes: tuple[tuple[str, Decimal], ...]

    def __post_init__(self) -> None:
        if not self.version:
            raise FxError("version", "a rate table needs a version")
        if not is_currency(self.base):
            raise FxError("base", f"unknown ISO 4217 currency {self.base!r}")
        for currency, quote in self.quotes:
            if not is_currency(currency):
                raise FxError("quotes", f"unknown ISO 4217 currency {currency!r}")
            if quote <= 0:
                raise FxError("quotes", f"{currency}: a quote must be positive")

    def quote(self, currency: str) -> Decimal | None:
        if currency == self.base:
            return Decimal(1)
        return dict(self.quotes).get(currency)

    def rate(self, source: str, target: str) -> Decimal:
        """Units of ``target`` per ``source``, rounded half-up to 8 places."""
        if source == target:
            return Decimal(1).quantize(_RATE_QUANTUM)
        q_source, q_target = self.quote(source), self.quote(target)
        if q_source is None or q_target is None:
            missing = source if q_source is None else target
            raise FxError("currency", f"table {self.version} has no rate for {missing}")
        return (q_target / q_source).quantize(_RATE_QUANTUM, rounding=ROUND_HALF_UP)

    def convert(self, minor_units: int, source: str, target: str) -> Conversion:
        rate = self.rate(source, target)
        return Conversion(convert(minor_units, source, target, rate), target, rate, self.version)


def table_for(tables: tuple[RateTable, ...], day: date) -> RateTable | None:
    """The table in force on ``day``: the latest whose effective date is not after it."""
    live = [t for t in tables if t.effective <= day]
    return max(live, key=lambda t: t.effective) if live else None


@dataclass(frozen=True, slots=True)
class DccOffer:
    """A DCC offer: the sale in the cardholder's currency, rate and markup disclosed.

    ``rate`` already includes the markup (``wholesale * (1 + markup_bps / 10000)``, rounded
    half-up to 8 places); the receipt shows both amounts, the rate and the markup.
    """

    amount_minor: int
    currency: str
    billing_minor: int
    billing_currency: str
    rate: Decimal
    wholesale_rate: Decimal
    markup_bps: int
    table_version: str


def dcc_offer(
    table: RateTable, amount_minor: int, currency: str, cardholder_currency: str, markup_bps: int
) -> DccOffer:
    """Quote a sale of ``amount_minor`` ``currency`` in the cardholder's currency."""
    if not 0 <= markup_bps <= MAX_MARKUP_BPS:
        raise FxError("markup_bps", f"markup must be within 0..{MAX_MARKUP_BPS} basis points")
    if cardholder_currency == currency:
        raise FxError("currency", "DCC needs a card billed in another currency")
    wholesale = table.rate(currency, cardholder_currency)
    rate = (wholesale * (1 + Decimal(markup_bps) / 10000)).quantize(
        _RATE_QUANTUM, rounding=ROUND_HALF_UP
    )
    billed = convert(amount_minor, currency, cardholder_currency, rate)
    return DccOffer(
        amount_minor, currency, billed, cardholder_currency, rate, wholesale, markup_bps,
        table.version,
    )  # fmt: skip


def check_currency(currency: str, field: str) -> None:
    if not is_currency(currency):
        raise MoneyError(field, f"unknown ISO 4217 currency {currency!r}")
