"""At the cut-off, join the batch material whose batch join failed at the time.

A capture or refund whose ``join_batch`` failed (store trouble after the money moved; logged
``batch_join_failed`` by ``switch.backoffice.batches.join``) would otherwise never be cleared:
nothing presents a transaction that is in no batch. The settlement run calls ``join_unbatched``
first, so such a transaction lands in its terminal's open batch and is closed and cleared by that
very run. ``join_batch`` keeps a transaction in the batch it is already in, so sweeping every
CAPTURED sale and APPROVED refund is harmless for those that joined (or were cleared and
rejected) before: only the missing ones move.
"""

from __future__ import annotations

from payswitch.logs import get as get_logger
from switch.backoffice.batches.join import item_of
from switch.domain.batches import ItemKind
from switch.domain.transactions import TxState, TxType
from switch.store.base import Store

_log = get_logger("switch.backoffice.batches")

SWEEP_LIMIT = 100_000  # per state and run; a larger backlog is swept by the next runs


async def join_unbatched(store: Store, now: float) -> int:
    """Join every CAPTURED sale and APPROVED refund to its terminal's open batch unless it is
    in a batch already; the number of transactions newly joined."""
    joined = 0
    candidates = [
        (tx, ItemKind.SALE)
        for tx in await store.transactions_in_state(TxState.CAPTURED, now, SWEEP_LIMIT)
        if tx.type is TxType.AUTHORIZATION
    ]
    candidates += [
        (tx, ItemKind.REFUND)
        for tx in await store.transactions_in_state(TxState.APPROVED, now, SWEEP_LIMIT)
        if tx.type is TxType.REFUND
    ]
    open_items: dict[str, tuple[int, set[str]]] = {}
    for tx, kind in candidates:
        if tx.terminal_id not in open_items:
            no = await store.open_batch_no(tx.terminal_id, now)
            ids = {i.transaction_id for i in await store.batch_items(tx.terminal_id, no)}
            open_items[tx.terminal_id] = (no, ids)
        open_no, ids = open_items[tx.terminal_id]
        if tx.id in ids:
            continue
        if await store.join_batch(tx.terminal_id, item_of(tx, kind), now) == open_no:
            ids.add(tx.id)
            joined += 1
            _log.warning("batch_join_recovered", tx=tx.id, kind=kind.value, batch=open_no)
    return joined
