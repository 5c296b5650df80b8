"""Money as integers in minor units with an ISO 4217 currency: parsing, formatting, checks.

Floats never touch an amount. ``parse_major("12.50", "EUR")`` gives 1250; the exponent of
each currency comes from the ISO 4217 table below (JPY 0, EUR 2, KWD 3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# ISO 4217 active alphabetic codes and their minor-unit exponents (list one, 2024 edition).
# Funds codes and precious metals (no minor unit defined) are left out on purpose.
_EXPONENTS: dict[str, int] = {
    "AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2, "AZN": 2,
    "BAM": 2, "BBD": 2, "BDT": 2, "BGN": 2, "BHD": 3, "BIF": 0, "BMD": 2, "BND": 2, "BOB": 2,
    "BRL": 2, "BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2, "CAD": 2, "CDF": 2, "CHF": 2,
    "CLP": 0, "CNY": 2, "COP": 2, "CRC": 2, "CUP": 2, "CVE": 2, "CZK": 2, "DJF": 0, "DKK": 2,
    "DOP": 2, "DZD": 2, "EGP": 2, "ERN": 2, "ETB": 2, "EUR": 2, "FJD": 2, "FKP": 2, "GBP": 2,
    "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2, "GNF": 0, "GTQ": 2, "GYD": 2, "HKD": 2, "HNL": 2,
    "HTG": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "IQD": 3, "IRR": 2, "ISK": 0, "JMD": 2,
    "JOD": 3, "JPY": 0, "KES": 2, "KGS": 2, "KHR": 2, "KMF": 0, "KPW": 2, "KRW": 0, "KWD": 3,
    "KYD": 2, "KZT": 2, "LAK": 2, "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2, "LYD": 3, "MAD": 2,
    "MDL": 2, "MGA": 2, "MKD": 2, "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2, "MVR": 2,
    "MWK": 2, "MXN": 2, "MYR": 2, "MZN": 2, "NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2, "NPR": 2,
    "NZD": 2, "OMR": 3, "PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2, "PKR": 2, "PLN": 2, "PYG": 0,
    "QAR": 2, "RON": 2, "RSD": 2, "RUB": 2, "RWF": 0, "SAR": 2, "SBD": 2, "SCR": 2, "SDG": 2,
    "SEK": 2, "SGD": 2, "SHP": 2, "SLE": 2, "SOS": 2, "SRD": 2, "SSP": 2, "STN": 2, "SVC": 2,
    "SYP": 2, "SZL": 2, "THB": 2, "TJS": 2, "TMT": 2, "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2,
    "TWD": 2, "TZS": 2, "UAH": 2, "UGX": 0, "USD": 2, "UYU": 2, "UYW": 4, "UZS": 2, "VED": 2,
    "VES": 2, "VND": 0, "VUV": 0, "WST": 2, "XAF": 0, "XCD": 2, "XOF": 0, "XPF": 0, "YER": 2,
    "ZAR": 2, "ZMW": 2, "ZWG": 2,
}  # fmt: skip

# ISO 8583 field 4 holds 12 digits: the largest amount any message can carry.
MAX_MINOR_UNITS = 999_999_999_999

_MAJOR = re.compile(r"[0-9]{1,12}(\.[0-9]{1,4})?")


class MoneyError(ValueError):
    """An amount or currency that cannot be accepted; ``field`` names what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def exponent(currency: str) -> int:
    """Minor-unit exponent of an ISO 4217 code; raises MoneyError for an unknown code."""
    try:
        return _EXPONENTS[currency]
    except KeyError:
        raise MoneyError("currency", f"unknown ISO 4217 currency {currency!r}") from None


def is_currency(currency: str) -> bool:
    return currency in _EXPONENTS


@dataclass(frozen=True, slots=True)
class Amount:
    """An amount in minor units of one currency. Arithmetic across currencies is refused."""

    minor_units: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.minor_units, int) or isinstance(self.minor_units, bool):
            raise MoneyError("minor_units", "amount must be an integer count of minor units")
        exponent(self.currency)

    def _same(self, other: Amount) -> None:
        if other.currency != self.currency:
            raise MoneyError("currency", f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Amount) -> Amount:
        self._same(other)
        return Amount(self.minor_units + other.minor_units, self.currency)

    def __sub__(self, other: Amount) -> Amount:
        self._same(other)
        return Amount(self.minor_units - other.minor_units, self.currency)

    def format(self) -> str:
        """Human form, e.g. ``12.50 EUR``, ``1000 JPY``, ``1.250 KWD``."""
        return f"{format_major(self.minor_units, self.currency)} {self.currency}"


def parse_major(text: str, currency: str) -> int:
    """Parse a major-unit decimal string ("12.50") into minor units for ``currency``.

    Refuses more decimals than the currency has, signs, exponents and anything but digits.
    """
    exp = exponent(currency)
    text = text.strip()
    if not _MAJOR.fullmatch(text):
        raise MoneyError("amount", f"not a plain decimal amount: {text!r}")
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the regex already guards this
        raise MoneyError("amount", f"not a decimal amount: {text!r}") from None
    scaled = value.scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise MoneyError("amount", f"{currency} has {exp} decimals; {text!r} has more")
    minor = int(scaled)
    if minor > MAX_MINOR_UNITS:
        raise MoneyError("amount", "amount exceeds the 12-digit ISO 8583 maximum")
    return minor


def format_major(minor_units: int, currency: str) -> str:
    """Minor units to a major-unit string with exactly the currency's decimals."""
    exp = exponent(currency)
    sign = "-" if minor_units < 0 else ""
    digits = str(abs(minor_units)).rjust(exp + 1, "0")
    if exp == 0:
        return sign + digits
    return f"{sign}{digits[:-exp]}.{digits[-exp:]}"


def check_positive(minor_units: int, currency: str, field: str = "amount") -> None:
    """Validate a request amount: known currency, 0 < amount <= ISO 8583 maximum."""
    if not currency:
        raise MoneyError(f"{field}.currency", "currency is required")
    if not is_currency(currency):
        raise MoneyError(f"{field}.currency", f"unknown ISO 4217 currency {currency!r}")
    if minor_units <= 0:
        raise MoneyError(f"{field}.minor_units", "amount must be positive")
    if minor_units > MAX_MINOR_UNITS:
        raise MoneyError(f"{field}.minor_units", "amount exceeds the 12-digit ISO 8583 maximum")
