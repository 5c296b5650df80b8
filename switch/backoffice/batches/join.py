"""The hook of capture, refund and void: put the transaction into its terminal's open batch.

Called after the transaction reached the state that makes it batch material (CAPTURED, an
approved refund, VOIDED or a void whose reversal is queued). The store joins a transaction
once (keyed by its id), so a retried request or two switches finishing the same capture put
it in one batch only. A store failure here does not undo the operation (the money moved at
the issuer): it is logged (``batch_join_failed``) and a capture or refund is marked unbatched
(``Store.mark_unbatched``), so the next cut-off's sweep joins it
(``switch.backoffice.batches.sweep``); if even the mark fails, ``batch_join_lost`` is logged
for the operator. The transaction itself stays CAPTURED (or refunded) and can be found by id.

A process can also die between the transition and the join (kill -9, a lost host): nothing
would then ever present the capture (fault seed 7, Cassandra, two switches: a switch killed
under a slow store after CAPTURED and before its join left a capture in no batch, and
reconciliation found it MISSING_AT_ACQUIRER). So capture and refund mark the transaction
unbatched *before* the transition that makes it batch material (``intend``), and a successful
join forgets the mark: a mark outlives its request only when the process died (or the join
failed), and the sweep finds it. A mark whose transaction did not become material (the capture
was declined or got no answer) is forgotten by the sweep once it is older than a request can
live (``switch.backoffice.batches.sweep.IN_FLIGHT_S``).
"""

from __future__ import annotations

import time

from payswitch.logs import get as get_logger
from switch.domain.batches import BatchItem, ItemKind
from switch.domain.errors import StoreError
from switch.domain.transactions import Transaction, TxState
from switch.services import Services

_log = get_logger("switch.backoffice.batches")

_KIND_OF_STATE = {
    TxState.CAPTURED: ItemKind.SALE,
    TxState.VOIDED: ItemKind.VOID,
    TxState.REVERSAL_PENDING: ItemKind.VOID,
}


def item_of(tx: Transaction, kind: ItemKind) -> BatchItem:
    amount = tx.captured_minor if kind is ItemKind.SALE else tx.amount_minor
    return BatchItem(tx.id, kind, amount, tx.currency, tx.scheme, time.time())


async def intend(svc: Services, tx: Transaction, kind: ItemKind) -> None:
    """Mark ``tx`` unbatched before the transition that makes it batch material (see the
    module docstring). A StoreError propagates: the caller has sent nothing yet."""
    await svc.store.mark_unbatched(tx.terminal_id, tx.id, kind, time.time())


async def join(svc: Services, tx: Transaction, kind: ItemKind) -> int | None:
    """Join ``tx`` to its terminal's open batch and forget its mark; the batch number, or None
    if the store failed (then it stays marked)."""
    now = time.time()
    try:
        batch_no = await svc.store.join_batch(tx.terminal_id, item_of(tx, kind), now)
    except StoreError:
        _log.error("batch_join_failed", tx=tx.id, kind=kind.value)
    else:
        if kind is not ItemKind.VOID:
            try:
                await svc.store.clear_unbatched(tx.id)
            except StoreError:
                pass  # the sweep finds it in its batch already and forgets the mark
        return batch_no
    if kind is not ItemKind.VOID:  # money to clear: the cut-off's sweep joins it
        try:
            await svc.store.mark_unbatched(tx.terminal_id, tx.id, kind, now)
        except StoreError:
            _log.error("batch_join_lost", tx=tx.id, kind=kind.value)  # the operator's
    return None


async def join_settled_state(svc: Services, tx: Transaction) -> int | None:
    """Join a capture's or void's transaction as the state it ended in says (a concurrent
    operation may have won the race: then that outcome is what the batch gets)."""
    kind = _KIND_OF_STATE.get(tx.state)
    if kind is None:
        return None
    return await join(svc, tx, kind)
