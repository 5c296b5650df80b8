"""At the cut-off, join the batch material whose batch join failed at the time.

A capture or refund whose ``join_batch`` failed (store trouble after the money moved; logged
``batch_join_failed`` by ``switch.backoffice.batches.join``) would otherwise never be cleared:
nothing presents a transaction that is in no batch. The join hook records such a transaction
in the store's small unbatched set (``Store.mark_unbatched``; capture and refund mark before
their transition, so a process killed before its join is covered too), and the settlement run's
``sweep`` step reads only that set (issue 17: never every CAPTURED transaction of the day), so
each lands in its terminal's open batch and is closed and cleared by that very run. A mark is
forgotten once its transaction is in a batch (``join_batch`` keeps a transaction in the batch
it is already in) or is no longer batch material (voided, settled); a crash mid-sweep leaves
the rest marked for the rerun.
"""

from __future__ import annotations

from payswitch.crashpoint import crashpoint
from payswitch.logs import get as get_logger
from switch.backoffice.batches.join import item_of
from switch.domain.batches import ItemKind
from switch.domain.transactions import TxState, TxType
from switch.store.base import Store

_log = get_logger("switch.backoffice.batches")

# A mark younger than this whose transaction is not batch material yet may belong to a request
# still in flight (marked, not yet CAPTURED): it is kept for the next run. A request lives its
# 2-second budget plus the store's own timeouts; 30 s is far past both.
IN_FLIGHT_S = 30.0
SWEEP_LIMIT = 100_000  # marks per run; a larger backlog is swept by the next runs
PAGE = 2_000


def _material(kind: ItemKind, state: TxState, type_: TxType) -> bool:
    if kind is ItemKind.SALE:
        return state is TxState.CAPTURED and type_ is TxType.AUTHORIZATION
    return kind is ItemKind.REFUND and state is TxState.APPROVED and type_ is TxType.REFUND


async def join_unbatched(store: Store, now: float) -> int:
    """Join every marked capture and refund to its terminal's open batch unless it is in a
    batch already; the number of marks handled."""
    marks = await store.unbatched(SWEEP_LIMIT)
    handled = 0
    for start in range(0, len(marks), PAGE):
        page = marks[start : start + PAGE]
        txs = {t.id: t for t in await store.get_transactions([m.transaction_id for m in page])}
        for mark in page:
            tx = txs.get(mark.transaction_id)
            if tx is not None and _material(mark.kind, tx.state, tx.type):
                batch_no = await store.join_batch(mark.terminal_id, item_of(tx, mark.kind), now)
                _log.warning("batch_join_recovered", tx=tx.id, kind=mark.kind.value, batch=batch_no)
            elif tx is not None and now - mark.marked_at < IN_FLIGHT_S:
                continue  # its request may still be running: the next run looks again
            await store.clear_unbatched(mark.transaction_id)
            handled += 1
        crashpoint("sweep.item")
    return handled
