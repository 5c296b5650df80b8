"""The rules an (allowance, spend) pair must pass, applied by the terminal before it approves
and again by the switch at settlement, and who bears a spend that fails each.

``check`` covers what one terminal can see alone: formats, the issuer's signature under a key
version it holds (current or previous) and that is not revoked, the device not revoked, the
device's signature, the spend naming this allowance, this terminal and merchant, its currency,
time within the allowance's validity, the per-transaction and count caps. What only the switch
sees, with every terminal's uploads, is in ``SETTLEMENT_ONLY``: the same counter spent twice
(a cloned device), a broken or forked chain, the cumulative cap over across terminals.

Liability: a failure the terminal could have seen is the merchant's (the terminal broke its own
rules, or its journal was altered after the fact); a failure only the network can see is the
cardholder's (the device was cloned or its key extracted: the allowance's hold and then the
account carry it). The first valid claim of a counter is always paid.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from payswitch.offline import ecdsa
from payswitch.offline.formats import Allowance, FormatError, Signed, Spend


class Problem(enum.StrEnum):
    BAD_ALLOWANCE = "bad_allowance"
    UNKNOWN_KEY = "unknown_key"
    BAD_ISSUER_SIGNATURE = "bad_issuer_signature"
    KEY_REVOKED = "key_revoked"
    DEVICE_REVOKED = "device_revoked"
    BAD_SPEND = "bad_spend"
    BAD_DEVICE_SIGNATURE = "bad_device_signature"
    WRONG_ALLOWANCE = "wrong_allowance"
    WRONG_TERMINAL = "wrong_terminal"
    EXPIRED = "expired"
    CURRENCY = "currency"
    PER_TX_CAP = "per_tx_cap"
    COUNT_CAP = "count_cap"
    DUPLICATE_COUNTER = "duplicate_counter"
    BROKEN_CHAIN = "broken_chain"
    CUMULATIVE_CAP = "cumulative_cap"


class Liability(enum.StrEnum):
    MERCHANT = "merchant"
    CARDHOLDER = "cardholder"


SETTLEMENT_ONLY = frozenset(
    {Problem.DUPLICATE_COUNTER, Problem.BROKEN_CHAIN, Problem.CUMULATIVE_CAP}
)


def liability(problems: list[Problem]) -> Liability:
    """Merchant when any problem was the terminal's to catch, else cardholder."""
    if any(p not in SETTLEMENT_ONLY for p in problems):
        return Liability.MERCHANT
    return Liability.CARDHOLDER


def device_id(device_key: bytes) -> str:
    """The name revocation lists use for a device: 32 hex digits of SHA-256 of its key."""
    return ecdsa.sha256(device_key).hex()[:32]


@dataclass(frozen=True, slots=True)
class Trust:
    """What a terminal caches at sync: issuer offline public keys by (issuer, version), revoked
    key versions and devices, and the list's version."""

    keys: Mapping[tuple[str, int], bytes] = field(default_factory=dict)
    revoked_keys: frozenset[tuple[str, int]] = frozenset()
    revoked_devices: frozenset[str] = frozenset()
    version: int = 0


@dataclass(frozen=True, slots=True)
class Checked:
    allowance: Allowance | None
    spend: Spend | None
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems


def check(
    allowance: Signed,
    spend: Signed,
    trust: Trust,
    *,
    terminal_id: str,
    merchant_id: str,
) -> Checked:
    """Every rule one terminal can apply; problems in a fixed order, empty when it may pass."""
    try:
        a = Allowance.parse(allowance.body)
    except FormatError:
        return Checked(None, None, [Problem.BAD_ALLOWANCE])
    problems: list[Problem] = []
    key = trust.keys.get((a.issuer, a.key_version))
    if key is None:
        problems.append(Problem.UNKNOWN_KEY)
    elif not ecdsa.verify(key, allowance.body, allowance.signature):
        problems.append(Problem.BAD_ISSUER_SIGNATURE)
    if (a.issuer, a.key_version) in trust.revoked_keys:
        problems.append(Problem.KEY_REVOKED)
    if device_id(a.device_key) in trust.revoked_devices:
        problems.append(Problem.DEVICE_REVOKED)
    try:
        s = Spend.parse(spend.body)
    except FormatError:
        return Checked(a, None, [*problems, Problem.BAD_SPEND])
    if not ecdsa.verify(a.device_key, spend.body, spend.signature):
        problems.append(Problem.BAD_DEVICE_SIGNATURE)
    if s.allowance_id != a.allowance_id:
        problems.append(Problem.WRONG_ALLOWANCE)
    if s.terminal_id != terminal_id or s.merchant_id != merchant_id:
        problems.append(Problem.WRONG_TERMINAL)
    if not a.issued_at <= s.time <= a.expires_at:
        problems.append(Problem.EXPIRED)
    if s.currency != a.currency:
        problems.append(Problem.CURRENCY)
    if s.amount > a.per_tx_cap:
        problems.append(Problem.PER_TX_CAP)
    if s.counter > a.count_cap:
        problems.append(Problem.COUNT_CAP)
    return Checked(a, s, problems)
