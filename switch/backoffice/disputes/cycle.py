"""The dispute cycle, simplified from the card schemes' but explicit.

::

    CHARGEBACK --represent (merchant evidence, before representment_due)--> REPRESENTED
    CHARGEBACK --accept (merchant), or representment_due passed-----------> ACCEPTED
    REPRESENTED --issuer accepts the representment---------------------------> WON
    REPRESENTED --issuer rejects it (pre-arbitration lost)-------------------> LOST
    REPRESENTED --response_due passed without an answer----------------------> WON

Deadlines: ``representment_due`` = raised_at + REPRESENTMENT_DAYS (30, as Visa's; Mastercard
gives 45); ``response_due`` = time of representment + RESPONSE_DAYS (30). A missed deadline
goes against the side that missed it: a merchant that never represents accepts the chargeback;
an issuer that never answers a representment loses (the merchant wins).

WON, LOST and ACCEPTED are final. Ledger postings per state: see ``switch.backoffice.ledger.rules``
(CHARGEBACK, REPRESENTMENT, DISPUTE_WON, DISPUTE_LOST; ACCEPTED posts nothing more).
"""

from __future__ import annotations

from switch.backoffice.ledger.events import EventKind
from switch.domain.ledger import DisputeState

DAY_S = 86_400
REPRESENTMENT_DAYS = 30
RESPONSE_DAYS = 30

# The ledger events a dispute in each state has posted, in order.
POSTINGS: dict[DisputeState, tuple[EventKind, ...]] = {
    DisputeState.CHARGEBACK: (EventKind.CHARGEBACK,),
    DisputeState.ACCEPTED: (EventKind.CHARGEBACK,),
    DisputeState.REPRESENTED: (EventKind.CHARGEBACK, EventKind.REPRESENTMENT),
    DisputeState.WON: (EventKind.CHARGEBACK, EventKind.REPRESENTMENT, EventKind.DISPUTE_WON),
    DisputeState.LOST: (EventKind.CHARGEBACK, EventKind.REPRESENTMENT, EventKind.DISPUTE_LOST),
}
