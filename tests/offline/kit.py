"""Helpers for offline tests: an issuer key and devices in memory (the HSM-backed keys are
tested in tests/hsm/test_offline_keys.py and the end-to-end test)."""

from __future__ import annotations

from pathlib import Path

from payswitch.offline import ecdsa
from payswitch.offline.checks import Trust
from payswitch.offline.formats import Allowance, Signed, sign_allowance
from terminals.offline_device import PayerDevice

NOW = 1_800_000_000


def allowance(
    issuer_key: ecdsa.SoftwareKey,
    device_key: bytes,
    allowance_id: str = "al-1",
    *,
    issuer: str = "bank-a",
    version: int = 1,
    card: str = "411111-tok-1111",
    per_tx: int = 5_000,
    cumulative: int = 20_000,
    count: int = 10,
    currency: str = "EUR",
    expires: int = NOW + 86_400,
) -> Signed:
    a = Allowance(
        issuer, version, allowance_id, card, device_key, per_tx, cumulative, count, currency,
        NOW - 60, expires,
    )  # fmt: skip
    return sign_allowance(a, issuer_key.sign_digest)


def trust(issuer_key: ecdsa.SoftwareKey, issuer: str = "bank-a", version: int = 1) -> Trust:
    return Trust(keys={(issuer, version): issuer_key.public_key()}, version=1)


def device(
    tmp: Path, issuer_key: ecdsa.SoftwareKey, name: str = "dev", **kw: object
) -> PayerDevice:
    d = PayerDevice(tmp / f"{name}.db", ecdsa.SoftwareKey())
    d.load(allowance(issuer_key, d.signer.public_key(), allowance_id=f"al-{name}", **kw))  # type: ignore[arg-type]
    return d
