"""Request validation for the terminal API: every field checked before anything is touched,
each failure an InvalidArgument naming the field. Nothing here echoes card data."""

from __future__ import annotations

import datetime as dt
import re

from payswitch import cards, money
from payswitch.v1 import common_pb2, terminal_pb2
from switch.errors import InvalidArgument

_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_TXID = re.compile(r"^[0-9a-f]{32}$")
_LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
ENTRY_MODES = frozenset(
    v for v in common_pb2.EntryMode.values() if v != common_pb2.ENTRY_MODE_UNSPECIFIED
)


def idempotency_key(key: str, field: str = "idempotency_key") -> str:
    """Optional; when present 1-64 characters of [A-Za-z0-9_-]."""
    if key and not _KEY.match(key):
        raise InvalidArgument(field, "must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
    return key


def identifier(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    if not _ID.match(value):
        raise InvalidArgument(field, "must be 1-32 characters of A-Z, a-z, 0-9, '_' or '-'")
    return value


def transaction_id(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    if not _TXID.match(value):
        raise InvalidArgument(field, "is not a transaction id")
    return value


def stan(value: int, field: str = "stan") -> int:
    if not 1 <= value <= 999_999:
        raise InvalidArgument(field, "must be between 1 and 999999")
    return value


def local_time(value: str, field: str = "local_time") -> dt.datetime:
    """ISO 8601 local date-time to the second, no zone: '2026-11-21T14:03:05'."""
    if not value:
        raise InvalidArgument(field, "is required")
    if not _LOCAL_TIME.match(value):
        raise InvalidArgument(field, "must be YYYY-MM-DDTHH:MM:SS")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(field, "is not a valid date and time") from None
    if not 2000 <= parsed.year <= 2099:
        raise InvalidArgument(field, "year must be between 2000 and 2099")
    return parsed


def amount(value: common_pb2.Money, present: bool, field: str = "amount") -> None:
    if not present:
        raise InvalidArgument(field, "is required")
    if len(value.currency) > 3:
        raise InvalidArgument(f"{field}.currency", "must be an ISO 4217 code")
    try:
        money.check_positive(value.minor_units, value.currency, field)
    except money.MoneyError as exc:
        raise InvalidArgument(exc.field, str(exc)) from None


def card(value: terminal_pb2.Card, present: bool, field: str = "card") -> cards.Scheme:
    if not present:
        raise InvalidArgument(field, "is required")
    if len(value.pan) > 19:
        raise InvalidArgument(f"{field}.pan", "card number must be 12 to 19 digits")
    try:
        scheme = cards.check_pan(value.pan, f"{field}.pan")
        cards.check_expiry(value.expiry, f"{field}.expiry")
    except cards.CardError as exc:
        raise InvalidArgument(exc.field, str(exc)) from None
    return scheme


def entry_mode(value: int, field: str = "entry_mode") -> int:
    if value not in ENTRY_MODES:
        raise InvalidArgument(field, "is required (chip, contactless, magstripe or manual)")
    return value


def authorize(req: terminal_pb2.AuthorizeRequest) -> tuple[cards.Scheme, dt.datetime]:
    """Validate an AuthorizeRequest field by field; returns the card scheme and local time."""
    idempotency_key(req.idempotency_key)
    identifier(req.terminal_id, "terminal_id")
    identifier(req.merchant_id, "merchant_id")
    stan(req.stan)
    when = local_time(req.local_time)
    amount(req.amount, req.HasField("amount"))
    entry_mode(req.entry_mode)
    scheme = card(req.card, req.HasField("card"))
    return scheme, when


def optional_amount(value: common_pb2.Money, present: bool, field: str = "amount") -> bool:
    """Capture's amount may be absent (capture in full); when present it must be valid."""
    if not present:
        return False
    amount(value, True, field)
    return True
