"""Card numbers: Luhn check, masking, and the BIN (IIN) table that names a card's scheme.

The table follows the schemes' published IIN ranges and PAN lengths. Where ranges overlap
(Discover and UnionPay share 622126-622925) the longest, most specific range wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Scheme(StrEnum):
    VISA = "visa"
    MASTERCARD = "mastercard"
    AMEX = "amex"
    DISCOVER = "discover"
    JCB = "jcb"
    UNIONPAY = "unionpay"


@dataclass(frozen=True, slots=True)
class IinRange:
    low: int
    high: int
    digits: int  # how many leading PAN digits the bounds describe
    lengths: tuple[int, ...]
    scheme: Scheme

    def matches(self, pan: str) -> bool:
        if len(pan) not in self.lengths or len(pan) < self.digits:
            return False
        return self.low <= int(pan[: self.digits]) <= self.high


def _r(low: str, high: str, lengths: tuple[int, ...], scheme: Scheme) -> IinRange:
    assert len(low) == len(high)
    return IinRange(int(low), int(high), len(low), lengths, scheme)


# Most specific first; the first match wins.
IIN_TABLE: tuple[IinRange, ...] = (
    _r("622126", "622925", (16, 17, 18, 19), Scheme.DISCOVER),  # co-branded with UnionPay
    _r("6011", "6011", (16, 17, 18, 19), Scheme.DISCOVER),
    _r("644", "649", (16, 17, 18, 19), Scheme.DISCOVER),
    _r("65", "65", (16, 17, 18, 19), Scheme.DISCOVER),
    _r("62", "62", (16, 17, 18, 19), Scheme.UNIONPAY),
    _r("81", "81", (16, 17, 18, 19), Scheme.UNIONPAY),
    _r("3528", "3589", (16, 17, 18, 19), Scheme.JCB),
    _r("34", "34", (15,), Scheme.AMEX),
    _r("37", "37", (15,), Scheme.AMEX),
    _r("2221", "2720", (16,), Scheme.MASTERCARD),
    _r("51", "55", (16,), Scheme.MASTERCARD),
    _r("4", "4", (13, 16, 19), Scheme.VISA),
)

_DIGITS = re.compile(r"[0-9]{12,19}")


class CardError(ValueError):
    """A card number that cannot be used; ``field`` names the request field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def luhn_valid(pan: str) -> bool:
    """ISO/IEC 7812-1 check digit."""
    if not pan.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(pan)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def scheme_of(pan: str) -> Scheme | None:
    for entry in IIN_TABLE:
        if entry.matches(pan):
            return entry.scheme
    return None


def check_pan(pan: str, field: str = "card.pan") -> Scheme:
    """Validate a PAN (digits, length, Luhn, known IIN) and return its scheme.

    Errors never repeat the PAN itself.
    """
    if not pan:
        raise CardError(field, "card number is required")
    if not _DIGITS.fullmatch(pan):
        raise CardError(field, "card number must be 12 to 19 digits")
    if not luhn_valid(pan):
        raise CardError(field, "card number fails the Luhn check")
    scheme = scheme_of(pan)
    if scheme is None:
        raise CardError(field, "card number is not in any supported scheme's IIN ranges")
    return scheme


def mask_pan(pan: str) -> str:
    """First six and last four digits visible (PCI DSS 3.4), the rest as '*'."""
    if len(pan) < 11:
        return "*" * len(pan)
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


def bin_of(pan: str) -> str:
    """The routing BIN sent on follow-up messages: first eight digits (six for 15-digit PANs)."""
    return pan[:6] if len(pan) < 16 else pan[:8]


_EXPIRY = re.compile(r"[0-9]{2}(0[1-9]|1[0-2])")


def check_expiry(expiry: str, field: str = "card.expiry") -> None:
    """YYMM, month 01-12. Whether it has passed is the issuer's decision (code 54)."""
    if not _EXPIRY.fullmatch(expiry or ""):
        raise CardError(field, "expiry must be YYMM")
