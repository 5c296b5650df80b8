"""The offline allowance and spend, version 1: fields, checks, canonical bytes, the chain.

Canonical bytes are ASCII, fields joined by ``|`` in a fixed order after a tag and the version,
integers in decimal without leading zeros, binary values in lower-case hex. Every text field is
restricted to ``[A-Za-z0-9._-]`` so that no field can contain the separator: one byte string per
value and one value per byte string, in any language. What is signed is SHA-256 of these bytes.

- allowance: ``PSW-OFFLINE-ALLOWANCE|1|issuer|key_version|allowance_id|card_token|device_key|
  per_tx_cap|cumulative_cap|count_cap|currency|issued_at|expires_at`` (signed by the issuer's
  offline key of ``key_version``);
- spend: ``PSW-OFFLINE-SPEND|1|allowance_id|counter|amount|currency|merchant_id|terminal_id|
  time|prev_hash`` (signed by the device key the allowance names).

The chain: ``prev_hash`` of counter 1 is SHA-256 of the allowance's canonical bytes; of counter
n > 1 the hash (SHA-256 of the canonical bytes) of spend n - 1. A missing, altered or forked link
is visible to whoever holds two neighbouring spends.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from payswitch.money import MAX_MINOR_UNITS, is_currency
from payswitch.offline.ecdsa import PUB_LEN, SIG_LEN, sha256

VERSION = 1
ALLOWANCE_TAG = "PSW-OFFLINE-ALLOWANCE"
SPEND_TAG = "PSW-OFFLINE-SPEND"
_TEXT = re.compile(r"[A-Za-z0-9._-]{1,64}")
_INT = re.compile(r"0|[1-9][0-9]{0,17}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_COUNTER = 1_000_000


class FormatError(ValueError):
    """A value that cannot be part of an allowance or spend; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _text(field: str, value: str) -> str:
    if not isinstance(value, str) or not _TEXT.fullmatch(value):
        raise FormatError(field, "must be 1-64 characters of [A-Za-z0-9._-]")
    return value


def _int(field: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FormatError(field, f"must be an integer in [{low}, {high}]")
    return value


def _currency(value: str) -> str:
    if not isinstance(value, str) or not is_currency(value):
        raise FormatError("currency", "must be an ISO 4217 code")
    return value


def _parse_int(field: str, text: str) -> int:
    if not _INT.fullmatch(text):
        raise FormatError(field, "not a canonical decimal integer")
    return int(text)


def _fields(data: bytes, tag: str, count: int) -> list[str]:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise FormatError(tag, "not ASCII") from None
    parts = text.split("|")
    if len(parts) != count + 2 or parts[0] != tag:
        raise FormatError(tag, f"expected {tag} with {count} fields")
    if parts[1] != str(VERSION):
        raise FormatError("version", f"unsupported version {parts[1][:8]!r}")
    return parts[2:]


@dataclass(frozen=True, slots=True)
class Allowance:
    """What the issuer signs: a device may spend up to these caps until ``expires_at``."""

    issuer: str
    key_version: int
    allowance_id: str
    card_token: str
    device_key: bytes  # 65-byte uncompressed P-256 point
    per_tx_cap: int
    cumulative_cap: int
    count_cap: int
    currency: str
    issued_at: int  # unix seconds
    expires_at: int

    def __post_init__(self) -> None:
        _text("issuer", self.issuer)
        _int("key_version", self.key_version, 1, 999_999)
        _text("allowance_id", self.allowance_id)
        _text("card_token", self.card_token)
        if not isinstance(self.device_key, bytes) or len(self.device_key) != PUB_LEN:
            raise FormatError("device_key", "must be a 65-byte uncompressed P-256 point")
        _int("per_tx_cap", self.per_tx_cap, 1, MAX_MINOR_UNITS)
        _int("cumulative_cap", self.cumulative_cap, 1, MAX_MINOR_UNITS)
        _int("count_cap", self.count_cap, 1, MAX_COUNTER)
        _currency(self.currency)
        _int("issued_at", self.issued_at, 0, 2**40)
        _int("expires_at", self.expires_at, self.issued_at + 1, 2**40)

    def canonical(self) -> bytes:
        values = (
            ALLOWANCE_TAG, VERSION, self.issuer, self.key_version, self.allowance_id,
            self.card_token, self.device_key.hex(), self.per_tx_cap, self.cumulative_cap,
            self.count_cap, self.currency, self.issued_at, self.expires_at,
        )  # fmt: skip
        return "|".join(str(v) for v in values).encode("ascii")

    def genesis(self) -> bytes:
        """``prev_hash`` of counter 1."""
        return sha256(self.canonical())

    @classmethod
    def parse(cls, data: bytes) -> Allowance:
        f = _fields(data, ALLOWANCE_TAG, 11)
        try:
            device_key = bytes.fromhex(f[4])
        except ValueError:
            raise FormatError("device_key", "not hex") from None
        if f[4] != device_key.hex():
            raise FormatError("device_key", "not lower-case hex")
        made = cls(
            issuer=f[0], key_version=_parse_int("key_version", f[1]), allowance_id=f[2],
            card_token=f[3], device_key=device_key,
            per_tx_cap=_parse_int("per_tx_cap", f[5]),
            cumulative_cap=_parse_int("cumulative_cap", f[6]),
            count_cap=_parse_int("count_cap", f[7]), currency=f[8],
            issued_at=_parse_int("issued_at", f[9]), expires_at=_parse_int("expires_at", f[10]),
        )  # fmt: skip
        if made.canonical() != data:
            raise FormatError(ALLOWANCE_TAG, "not canonical")
        return made


@dataclass(frozen=True, slots=True)
class Spend:
    """What the device signs for one offline sale."""

    allowance_id: str
    counter: int  # 1, 2, 3 ... per allowance, never reused
    amount: int  # minor units
    currency: str
    merchant_id: str
    terminal_id: str
    time: int  # unix seconds, the device's clock
    prev_hash: bytes  # 32 bytes: the chain

    def __post_init__(self) -> None:
        _text("allowance_id", self.allowance_id)
        _int("counter", self.counter, 1, MAX_COUNTER)
        _int("amount", self.amount, 1, MAX_MINOR_UNITS)
        _currency(self.currency)
        _text("merchant_id", self.merchant_id)
        _text("terminal_id", self.terminal_id)
        _int("time", self.time, 0, 2**40)
        if not isinstance(self.prev_hash, bytes) or len(self.prev_hash) != 32:
            raise FormatError("prev_hash", "must be 32 bytes")

    def canonical(self) -> bytes:
        values = (
            SPEND_TAG, VERSION, self.allowance_id, self.counter, self.amount, self.currency,
            self.merchant_id, self.terminal_id, self.time, self.prev_hash.hex(),
        )  # fmt: skip
        return "|".join(str(v) for v in values).encode("ascii")

    def digest(self) -> bytes:
        """The link the next spend names as ``prev_hash`` (and what the device signs)."""
        return sha256(self.canonical())

    @classmethod
    def parse(cls, data: bytes) -> Spend:
        f = _fields(data, SPEND_TAG, 8)
        if not _HEX64.fullmatch(f[7]):
            raise FormatError("prev_hash", "must be 64 lower-case hex digits")
        made = cls(
            allowance_id=f[0], counter=_parse_int("counter", f[1]),
            amount=_parse_int("amount", f[2]), currency=f[3], merchant_id=f[4],
            terminal_id=f[5], time=_parse_int("time", f[6]), prev_hash=bytes.fromhex(f[7]),
        )  # fmt: skip
        if made.canonical() != data:
            raise FormatError(SPEND_TAG, "not canonical")
        return made


@dataclass(frozen=True, slots=True)
class Signed:
    """Canonical bytes and their signature (r || s), as they travel and are journalled."""

    body: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.signature, bytes) or len(self.signature) != SIG_LEN:
            raise FormatError("signature", "must be 64 bytes r || s")

    def __repr__(self) -> str:
        return f"Signed({len(self.body)} bytes)"


def sign_allowance(allowance: Allowance, sign_digest: Callable[[bytes], bytes]) -> Signed:
    """The allowance's canonical bytes signed by ``sign_digest`` (the issuer's offline key)."""
    body = allowance.canonical()
    return Signed(body, sign_digest(sha256(body)))
