"""Request validation for the terminal API: every field checked before anything is touched,
each failure an InvalidArgument naming the field. Nothing here echoes card data.

For an authorization this is the structure only: clear card data is refused outright, the
encrypted card data, PIN block, chip data and MAC must have their lengths. Their content is
checked in the HSM after the MAC (``switch.cardsec.hsm``): a forged value is then refused as
UNAUTHENTICATED, an authentic but unusable one as INVALID_ARGUMENT naming ``encrypted_card``
or ``pin_block``."""

from __future__ import annotations

import datetime as dt
import re

from hsm.dukpt import KSN_LEN, LAST_COUNTER, Ksn
from payswitch import fx, money
from payswitch.v1 import common_pb2, network_pb2, terminal_pb2
from switch.wire.errors import InvalidArgument

_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_TXID = re.compile(r"[0-9a-f]{32}")
_LOCAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")
ENTRY_MODES = frozenset(
    v for v in common_pb2.EntryMode.values() if v != common_pb2.ENTRY_MODE_UNSPECIFIED
)
CHIP_MODES = frozenset({common_pb2.ENTRY_MODE_CHIP, common_pb2.ENTRY_MODE_CONTACTLESS})
CLEAR_CARD_REFUSED = "clear card data is not accepted; send encrypted_card"
MAX_CARD_CIPHERTEXT = 256  # CardData is under 64 bytes; anything near this is not card data
MAC_LEN = 16
PIN_BLOCK_LEN = 16
# EmvData: exact byte lengths (EMV Book 3 data elements); issuer_application_data is 0..32.
_EMV_LENGTHS: dict[str, int] = {
    "arqc": 8,
    "atc": 2,
    "unpredictable_number": 4,
    "amount_authorised": 6,
    "amount_other": 6,
    "terminal_country_code": 2,
    "tvr": 5,
    "transaction_currency_code": 2,
    "transaction_date": 3,
    "transaction_type": 1,
    "aip": 2,
}


def idempotency_key(key: str, field: str = "idempotency_key") -> str:
    """Optional; when present 1-64 characters of [A-Za-z0-9_-]."""
    if key and not _KEY.fullmatch(key):
        raise InvalidArgument(field, "must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
    return key


def identifier(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    if not _ID.fullmatch(value):
        raise InvalidArgument(field, "must be 1-32 characters of A-Z, a-z, 0-9, '_' or '-'")
    return value


def transaction_id(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    if not _TXID.fullmatch(value):
        raise InvalidArgument(field, "is not a transaction id")
    return value


def stan(value: int, field: str = "stan") -> int:
    if not 1 <= value <= 999_999:
        raise InvalidArgument(field, "must be between 1 and 999999")
    return value


# The terminal's local time carries no zone, and zones run from UTC-12 to UTC+14: a window
# narrower than this around the switch's UTC clock would refuse honest terminals.
MIN_LOCAL_TIME_WINDOW_S = 14 * 3600.0


def local_time(
    value: str,
    field: str = "local_time",
    *,
    now: float | None = None,
    window_s: float | None = None,
) -> dt.datetime:
    """ISO 8601 local date-time to the second, no zone: '2026-11-21T14:03:05'.

    With ``now`` (Unix time) and ``window_s``: the local time, read as if it were UTC, must be
    within ``window_s`` of the switch's clock. The terminal's zone is unknown (the field has
    none), so the window must cover the zone offsets (``MIN_LOCAL_TIME_WINDOW_S``) plus clock
    drift; it stops a request stamped days or years away (a stale replay, a forged date)."""
    if not value:
        raise InvalidArgument(field, "is required")
    if not _LOCAL_TIME.fullmatch(value):
        raise InvalidArgument(field, "must be YYYY-MM-DDTHH:MM:SS")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(field, "is not a valid date and time") from None
    if not 2000 <= parsed.year <= 2099:
        raise InvalidArgument(field, "year must be between 2000 and 2099")
    if now is not None and window_s is not None:
        skew = parsed.replace(tzinfo=dt.UTC).timestamp() - now
        if abs(skew) > window_s:
            hours = window_s / 3600
            raise InvalidArgument(
                field, f"is more than {hours:g} h from the switch's clock (any time zone)"
            )
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


def no_clear_card(present: bool, field: str = "card") -> None:
    """The deprecated clear ``card`` is refused, whatever else the request carries."""
    if present:
        raise InvalidArgument(field, CLEAR_CARD_REFUSED)


def encrypted_card(
    value: terminal_pb2.EncryptedCard, present: bool, field: str = "encrypted_card"
) -> None:
    if not present:
        raise InvalidArgument(field, "is required")
    if len(value.ksn) != KSN_LEN:
        raise InvalidArgument(f"{field}.ksn", f"must be {KSN_LEN} bytes (AES-DUKPT)")
    ksn(value.ksn, f"{field}.ksn")
    n = len(value.ciphertext)
    if not n or n % 16 or n > MAX_CARD_CIPHERTEXT:
        raise InvalidArgument(
            f"{field}.ciphertext",
            f"must be 16 to {MAX_CARD_CIPHERTEXT} bytes, a multiple of 16 (AES-CBC)",
        )


def ksn(value: bytes, field: str = "ksn") -> Ksn:
    """A 12-byte AES-DUKPT KSN whose counter is not exhausted."""
    if not value:
        raise InvalidArgument(field, f"is required: {KSN_LEN} bytes (AES-DUKPT)")
    if len(value) != KSN_LEN:
        raise InvalidArgument(field, f"must be {KSN_LEN} bytes (AES-DUKPT)")
    if int.from_bytes(value[8:], "big") > LAST_COUNTER:
        raise InvalidArgument(
            field, "the device's DUKPT counter is exhausted: load a new initial key"
        )
    try:
        return Ksn.from_bytes(value)
    except ValueError:
        raise InvalidArgument(field, "is not a valid AES-DUKPT KSN") from None


def pin_block(value: bytes, field: str = "pin_block") -> None:
    if value and len(value) != PIN_BLOCK_LEN:
        raise InvalidArgument(field, "must be empty or 16 bytes (ISO 9564-1 format 4)")


def emv(value: network_pb2.EmvData, present: bool, mode: int, field: str = "emv") -> None:
    """Chip data, when sent: element lengths, and an entry mode that reads a chip."""
    if not present:
        return
    if mode not in CHIP_MODES:
        raise InvalidArgument(field, "chip data needs entry mode chip or contactless")
    for name, n in _EMV_LENGTHS.items():
        if len(getattr(value, name)) != n:
            raise InvalidArgument(f"{field}.{name}", f"must be {n} bytes")
    if len(value.issuer_application_data) > 32:
        raise InvalidArgument(f"{field}.issuer_application_data", "must be at most 32 bytes")
    psn = value.pan_sequence_number
    if not (len(psn) == 2 and psn.isascii() and psn.isdigit()):
        raise InvalidArgument(f"{field}.pan_sequence_number", "must be two digits")


def mac(value: bytes, field: str = "mac") -> None:
    if len(value) != MAC_LEN:
        raise InvalidArgument(field, f"is required: {MAC_LEN}-byte AES-CMAC (DUKPT MAC key)")


def entry_mode(value: int, field: str = "entry_mode") -> int:
    if value not in ENTRY_MODES:
        raise InvalidArgument(field, "is required (chip, contactless, magstripe or manual)")
    return value


def authorize(
    req: terminal_pb2.AuthorizeRequest, now: float | None = None, window_s: float | None = None
) -> dt.datetime:
    """Validate an AuthorizeRequest's structure field by field; returns the local time
    (within ``window_s`` of ``now`` when given: ``local_time``).

    The card's scheme is known only once the card data is decrypted, after the MAC."""
    no_clear_card(req.HasField("card"))
    idempotency_key(req.idempotency_key)
    identifier(req.terminal_id, "terminal_id")
    identifier(req.merchant_id, "merchant_id")
    stan(req.stan)
    when = local_time(req.local_time, now=now, window_s=window_s)
    amount(req.amount, req.HasField("amount"))
    entry_mode(req.entry_mode)
    encrypted_card(req.encrypted_card, req.HasField("encrypted_card"))
    pin_block(req.pin_block)
    emv(req.emv, req.HasField("emv"), req.entry_mode)
    dcc_choice(req)
    mac(req.mac)
    return when


def dcc_choice(req: terminal_pb2.AuthorizeRequest) -> None:
    """A DCC choice (issue 16): both fields or neither, a known currency other than the
    sale's, a rate as QuoteDcc gives it (positive, at most 8 decimals)."""
    if not req.dcc_currency and not req.dcc_rate:
        return
    if not req.dcc_currency or not money.is_currency(req.dcc_currency):
        raise InvalidArgument("dcc_currency", "must be the ISO 4217 code of the offer")
    if req.dcc_currency == req.amount.currency:
        raise InvalidArgument("dcc_currency", "must differ from the sale's currency")
    try:
        fx.parse_rate(req.dcc_rate, "dcc_rate")
    except fx.FxError as exc:
        raise InvalidArgument("dcc_rate", str(exc)) from None


def optional_amount(value: common_pb2.Money, present: bool, field: str = "amount") -> bool:
    """Capture's amount may be absent (capture in full); when present it must be valid."""
    if not present:
        return False
    amount(value, True, field)
    return True
