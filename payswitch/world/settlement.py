"""The topology's settlement keys: ``[settlement]``, ``[[fees]]`` and each issuer's hold TTL.

    [settlement]
    cutoff = "22:00"            # daily batch cut-off, UTC, "HH:MM" or "HH:MM:SS"
    dir = ".run/settlement"     # clearing files and reports (relative: to the working dir)
    auto_close = true           # the switch closes batches and runs clearing at the cut-off
    capture_tolerance_pct = 20  # a capture may exceed the authorization by this much ...
    tolerance_mccs = ["5812", "4121", "7230"]  # ... for these MCCs (tips, taxis, salons)

    [[fees]]                    # see switch.backoffice.settlement.fees
    scheme = "visa"; mcc = "*"; currency = "EUR"; interchange_bps = 20
    interchange_fixed_minor = 0; scheme_fee_bps = 5; scheme_fee_fixed_minor = 1

    [[issuers]] hold_ttl_s = 604800   # an uncaptured hold expires after this (default 7 days)

The cut-off is UTC whatever the host's zone: one clock for every switch process.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payswitch.cards import Scheme
from payswitch.money import is_currency

DEFAULT_HOLD_TTL_S = 7 * 24 * 3600
DEFAULT_TOLERANCE_MCCS = ("5812", "4121", "7230")


class SettlementConfigError(ValueError):
    """A settlement key is malformed (topology.py reports it as a TopologyError)."""


@dataclass(frozen=True, slots=True)
class SettlementConfig:
    cutoff: dt.time = dt.time(22, 0)
    dir: str = ".run/settlement"
    auto_close: bool = True
    capture_tolerance_pct: int = 20
    tolerance_mccs: tuple[str, ...] = DEFAULT_TOLERANCE_MCCS

    def directory(self) -> Path:
        return Path(self.dir).resolve()

    def capture_ceiling(self, authorized_minor: int, mcc: str) -> int:
        """The most a capture of ``authorized_minor`` may be for merchants of ``mcc``:
        the authorization itself, or for tolerance MCCs that plus the tolerance, rounded
        down to the minor unit (integer arithmetic)."""
        if mcc in self.tolerance_mccs:
            return authorized_minor + authorized_minor * self.capture_tolerance_pct // 100
        return authorized_minor


@dataclass(frozen=True, slots=True)
class FeeConfig:
    scheme: str  # card brand, e.g. "visa"
    mcc: str  # "*": any MCC without a rule of its own
    currency: str
    interchange_bps: int = 0
    interchange_fixed_minor: int = 0
    scheme_fee_bps: int = 0
    scheme_fee_fixed_minor: int = 0


def parse_cutoff(text: str) -> dt.time:
    try:
        parts = [int(p) for p in text.split(":")]
        if len(parts) not in (2, 3):
            raise ValueError
        return dt.time(parts[0], parts[1], parts[2] if len(parts) == 3 else 0)
    except (ValueError, TypeError, AttributeError):
        raise SettlementConfigError(
            f'settlement: cutoff must be "HH:MM" or "HH:MM:SS" (UTC), not {text!r}'
        ) from None


def _non_negative_int(raw: dict[str, Any], key: str, where: str, default: int = 0) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SettlementConfigError(f"{where}: {key} must be a non-negative integer")
    return value


def parse_settlement(raw: dict[str, Any] | None) -> SettlementConfig:
    raw = raw or {}
    mccs = raw.get("tolerance_mccs", list(DEFAULT_TOLERANCE_MCCS))
    if not isinstance(mccs, list) or not all(isinstance(m, str) and m.isdigit() for m in mccs):
        raise SettlementConfigError("settlement: tolerance_mccs must be a list of MCC strings")
    auto = raw.get("auto_close", True)
    if not isinstance(auto, bool):
        raise SettlementConfigError("settlement: auto_close must be true or false")
    directory = raw.get("dir", ".run/settlement")
    if not isinstance(directory, str) or not directory:
        raise SettlementConfigError("settlement: dir must be a path")
    return SettlementConfig(
        cutoff=parse_cutoff(raw.get("cutoff", "22:00")),
        dir=directory,
        auto_close=auto,
        capture_tolerance_pct=_non_negative_int(raw, "capture_tolerance_pct", "settlement", 20),
        tolerance_mccs=tuple(mccs),
    )


def parse_fees(entries: list[dict[str, Any]] | None) -> tuple[FeeConfig, ...]:
    fees: list[FeeConfig] = []
    for n, raw in enumerate(entries or []):
        where = f"fees #{n}"
        try:
            scheme = Scheme(raw["scheme"]).value
        except (KeyError, ValueError):
            raise SettlementConfigError(f"{where}: scheme must be a card brand") from None
        currency = raw.get("currency", "")
        if not is_currency(currency):
            raise SettlementConfigError(f"{where}: unknown currency {currency!r}")
        mcc = str(raw.get("mcc", "*"))
        if mcc != "*" and not mcc.isdigit():
            raise SettlementConfigError(f"{where}: mcc must be digits or '*'")
        fees.append(
            FeeConfig(
                scheme=scheme,
                mcc=mcc,
                currency=currency,
                interchange_bps=_non_negative_int(raw, "interchange_bps", where),
                interchange_fixed_minor=_non_negative_int(raw, "interchange_fixed_minor", where),
                scheme_fee_bps=_non_negative_int(raw, "scheme_fee_bps", where),
                scheme_fee_fixed_minor=_non_negative_int(raw, "scheme_fee_fixed_minor", where),
            )
        )
    keys = [(f.scheme, f.mcc, f.currency) for f in fees]
    dupes = {k for k in keys if keys.count(k) > 1}
    if dupes:
        raise SettlementConfigError(f"fees: more than one entry for {sorted(dupes)}")
    return tuple(fees)


def parse_hold_ttl(raw: dict[str, Any], where: str) -> float:
    value = raw.get("hold_ttl_s", DEFAULT_HOLD_TTL_S)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise SettlementConfigError(f"{where}: hold_ttl_s must be a positive number of seconds")
    return float(value)
