"""ISO 8583 field 39 response codes and their protobuf enum (value = 100 + the two digits)."""

from __future__ import annotations

from payswitch.v1 import common_pb2

APPROVED = "00"
DO_NOT_HONOUR = "05"
INVALID_TRANSACTION = "12"
INVALID_AMOUNT = "13"
INVALID_CARD_NUMBER = "14"
INSUFFICIENT_FUNDS = "51"
EXPIRED_CARD = "54"
INCORRECT_PIN = "55"
TRANSACTION_NOT_PERMITTED = "57"  # stand-in: merchant category not permitted
SUSPECTED_FRAUD = "59"
EXCEEDS_AMOUNT_LIMIT = "61"
RESTRICTED_CARD = "62"  # stand-in: card or BIN on the negative list
EXCEEDS_FREQUENCY_LIMIT = "65"
ISSUER_UNAVAILABLE = "91"
DUPLICATE_TRANSMISSION = "94"
SYSTEM_MALFUNCTION = "96"


def to_enum(iso: str) -> int:
    """'51' -> RESPONSE_CODE_INSUFFICIENT_FUNDS (151)."""
    value = 100 + int(iso)
    common_pb2.ResponseCode.Name(value)  # raises ValueError for a code outside the set
    return value


def to_iso(value: int) -> str:
    """RESPONSE_CODE_INSUFFICIENT_FUNDS (151) -> '51'; UNSPECIFIED -> ''."""
    if value == common_pb2.RESPONSE_CODE_UNSPECIFIED:
        return ""
    return f"{value - 100:02d}"


def name(value: int) -> str:
    """Readable name without the prefix: 151 -> 'INSUFFICIENT_FUNDS'."""
    return common_pb2.ResponseCode.Name(value).removeprefix("RESPONSE_CODE_")
