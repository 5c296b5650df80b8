"""Surrogate tokens for PANs and keyed request fingerprints, both HMAC-SHA256 in the HSM.

Token = first 6 digits || middle digits from the MAC || last 4 digits, same length as the PAN.
MAC = CKM_SHA256_HMAC under ``switch/token/v1`` (GENERIC_SECRET, SIGN/VERIFY only) over
``b"PSW-TOKEN-1|" + PAN``. Middle digits come from the MAC bytes by rejection sampling (bytes
>= 250 are skipped, so each digit is uniform). The token is then made Luhn-INVALID on purpose:
if the digits happen to pass the Luhn check, the last middle digit is incremented mod 10 (a single
digit change always breaks Luhn). A token can therefore never be mistaken for, or be accepted as,
a card number, while keeping the BIN (routing, scheme) and last 4 (receipts, support) visible.

Same PAN, same token (deterministic, so it serves lookups, velocity counts and the state store);
without the HSM key a token cannot be computed from a PAN, nor reversed. Collisions: the
middle carries only len(PAN)-10 digits (6 for a 16-digit PAN, 9*10^5 Luhn-invalid values), so
two PANs that share BIN and last 4 collide with probability about n^2 / 1.8e6 for n such cards.
Uses that need an exact key (the vault index) should use :attr:`Token.digest`, the full 256-bit
MAC in hex, which :func:`tokenize_full` returns alongside the display token.

Fingerprints (idempotency keys' request digests) use a second key, ``switch/fingerprint/v1``,
so that a fingerprint can never be confused with, or turned into, a PAN token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pkcs11 import Mechanism

from hsm import labels as L
from hsm.pool import HsmPool, get_key

TOKEN_LABEL = L.label(L.SWITCH, L.TOKENIZATION, 1)
FINGERPRINT_LABEL = L.label(L.SWITCH, L.FINGERPRINT, 1)
_TOKEN_DOMAIN = b"PSW-TOKEN-1|"
_FP_DOMAIN = b"PSW-FP-1|"


class PanError(ValueError):
    """The value is not a PAN (12-19 ASCII digits); the message never repeats the value."""


@dataclass(frozen=True, slots=True)
class Token:
    display: str  # format-preserving, Luhn-invalid: first 6 + MAC digits + last 4
    digest: str  # full HMAC-SHA256, hex: collision-free lookup key

    def __repr__(self) -> str:
        return f"Token(display={self.display!r})"


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _check_pan(pan: str) -> None:
    if not (isinstance(pan, str) and 12 <= len(pan) <= 19 and pan.isascii() and pan.isdigit()):
        raise PanError("not a PAN: expected 12 to 19 digits")


def shape(pan: str, mac: bytes) -> str:
    """Format-preserving, Luhn-invalid token from a PAN and its MAC (pure function)."""
    _check_pan(pan)
    need = len(pan) - 10
    middle: list[str] = []
    for b in mac:
        if b < 250:
            middle.append(str(b % 10))
            if len(middle) == need:
                break
    if len(middle) < need:  # 32 MAC bytes give >= 9 digits except with negligible probability
        raise ValueError("MAC too short to shape a token")
    token = pan[:6] + "".join(middle) + pan[-4:]
    if luhn_valid(token):
        last = len(token) - 5
        token = token[:last] + str((int(token[last]) + 1) % 10) + token[last + 1 :]
    return token


def tokenize_full(session: Any, pan: str, key_label: str = TOKEN_LABEL) -> Token:
    """Job: display token and full digest of a PAN."""
    _check_pan(pan)
    mac: bytes = get_key(session, key_label).sign(
        _TOKEN_DOMAIN + pan.encode(), mechanism=Mechanism.SHA256_HMAC
    )
    return Token(shape(pan, mac), mac.hex())


def tokenize(session: Any, pan: str, key_label: str = TOKEN_LABEL) -> str:
    """Job: the format-preserving token of a PAN."""
    return tokenize_full(session, pan, key_label).display


def fingerprint(session: Any, data: bytes, key_label: str = FINGERPRINT_LABEL) -> str:
    """Job: keyed digest (hex HMAC-SHA256) of request content, for idempotency fingerprints."""
    mac: bytes = get_key(session, key_label).sign(
        _FP_DOMAIN + bytes(data), mechanism=Mechanism.SHA256_HMAC
    )
    return mac.hex()


class HsmCardProtector:
    """``switch.cardsec.protector.CardProtector`` backed by the HSM pool (one job per call)."""

    def __init__(self, pool: HsmPool) -> None:
        self.pool = pool

    async def tokenize(self, pan: str) -> str:
        return await self.pool.run(tokenize, pan)

    async def digest(self, data: bytes) -> str:
        return await self.pool.run(fingerprint, data)
