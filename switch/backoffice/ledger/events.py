"""Money movements the ledger posts, each with an id derived from its source.

``event_id`` = ``<transaction id>/<kind>/<sequence>``: a capture or refund is presented once
(sequence ``0``), settled once (``0``); dispute events use the chargeback id as sequence, so a
second chargeback cycle on one sale is another event. Replaying an event (the same id) posts
nothing new.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class EventKind(enum.StrEnum):
    CAPTURE_PRESENTED = "CAPTURE_PRESENTED"
    REFUND_PRESENTED = "REFUND_PRESENTED"
    CAPTURE_SETTLED = "CAPTURE_SETTLED"
    REFUND_SETTLED = "REFUND_SETTLED"
    CHARGEBACK = "CHARGEBACK"
    REPRESENTMENT = "REPRESENTMENT"
    DISPUTE_WON = "DISPUTE_WON"
    DISPUTE_LOST = "DISPUTE_LOST"
    FX_CAPTURE_SETTLED = "FX_CAPTURE_SETTLED"
    FX_REFUND_SETTLED = "FX_REFUND_SETTLED"


@dataclass(frozen=True, slots=True)
class Event:
    """One money movement. ``amount_minor`` is positive; the rule gives it its direction.
    ``interchange_minor``/``scheme_fee_minor``: the fees of a settlement (from the fee table)."""

    kind: EventKind
    transaction_id: str
    sequence: str
    merchant_id: str
    acquirer_id: str
    scheme: str
    amount_minor: int
    currency: str
    occurred_at: float
    rrn: str = ""
    interchange_minor: int = 0
    scheme_fee_minor: int = 0
    # FX events (in the billing currency): the transaction amount converted at the clearing
    # rate; ``amount_minor`` is what the issuer posted (at the authorization's rate).
    cleared_minor: int = 0

    @property
    def event_id(self) -> str:
        return f"{self.transaction_id}/{self.kind.value}/{self.sequence}"
