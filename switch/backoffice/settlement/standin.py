"""Stand-in sales in clearing: a closed batch waits until each of its stand-in sales is advised.

A stand-in sale may be captured before its advice reaches the issuer (during the very outage
that caused it). The issuer posts the presentment against the hold the advice placed, and the
clearing file carries no PAN the issuer could force-post by, so the advice must land first.
The settlement run therefore leaves a CLOSED batch holding a captured sale whose ``ADVICE``
item is not done yet CLOSED (none of its records are presented, so nothing is presented
twice), and presents the whole batch at the first cut-off after the advice was delivered. A
dead-lettered advice keeps its batch waiting until an operator replays it
(``payswitch-admin saf replay ADVICE:<id>``); the run logs ``clearing_waits_for_advice``.
"""

from __future__ import annotations

from switch.domain.saf import SafKind, item_id
from switch.domain.transactions import Transaction
from switch.store.base import Store


async def advice_owed(store: Store, tx: Transaction | str) -> bool:
    """True when ``tx`` (or the transaction of that id) is a stand-in sale whose advice the
    issuer has not acknowledged."""
    tx_id = tx if isinstance(tx, str) else tx.id
    item = await store.saf_get(item_id(SafKind.ADVICE, tx_id))
    return item is not None and not item.done


OWED_LIMIT = 50_000  # live + dead advices read at once; more than that: ask per sale


async def owed_advices(store: Store) -> set[str] | None:
    """The ids of the transactions whose advice is still owed (live or dead-lettered ADVICE
    items), read once per run instead of once per sale (issue 17); None when there are too
    many to hold (then ``advice_owed`` per sale)."""
    owed: set[str] = set()
    for dead in (False, True):
        items = await store.saf_list(dead, OWED_LIMIT)
        if len(items) >= OWED_LIMIT:
            return None
        owed.update(i.transaction_id for i in items if i.kind is SafKind.ADVICE and not i.done)
    return owed
