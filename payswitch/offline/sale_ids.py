"""The identifiers an accepted offline spend clears under, derived from the spend's digest.

The switch (``switch.backoffice.offline.sales``) records the spend as a captured sale and the
issuer (``issuer.offline_service``) holds it in its books under the same RRN, each from the
digest alone: no extra field on the wire, and a repeated upload or post lands on the same
transaction and hold. RRNs start with ``9``: the switch's online RRNs count up from 0 and
never get there.
"""

from __future__ import annotations

import re

_DIGEST = re.compile(r"[0-9a-f]{64}")


def _digest(digest_hex: str) -> str:
    if not _DIGEST.fullmatch(digest_hex):
        raise ValueError("spend digest: must be 64 lowercase hex digits")
    return digest_hex


def rrn_of_spend(digest_hex: str) -> str:
    """ISO 8583 field 37 (twelve digits) for an offline spend."""
    return "9" + f"{int(_digest(digest_hex)[:16], 16) % 10**11:011d}"


def transaction_id_of_spend(digest_hex: str) -> str:
    """The switch's transaction id for an offline spend."""
    return "offline-" + _digest(digest_hex)[:32]


def stan_of_spend(digest_hex: str) -> int:
    """A STAN outside the terminals' 1..999999, so an offline sale never takes the
    (terminal, local date, STAN) of an online one."""
    return 1_000_000 + int(_digest(digest_hex)[16:24], 16) % 1_000_000_000


def auth_code_of_spend(digest_hex: str) -> str:
    return _digest(digest_hex)[:6].upper()
