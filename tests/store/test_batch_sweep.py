"""The cut-off's sweep (``switch.backoffice.batches.sweep``): a capture or refund whose batch join
failed joins its terminal's open batch at the next cut-off; what is in a batch already stays there;
on every backend."""

from __future__ import annotations

import uuid

from storekit import NOW, new_tx

from switch.backoffice.batches.join import item_of
from switch.backoffice.batches.sweep import join_unbatched
from switch.domain.batches import ItemKind
from switch.domain.transactions import Changes, TxState, TxType
from switch.store.base import Store

LATER = NOW + 60.0


async def _in(store: Store, state: TxState, **kw: object):
    tx = new_tx(**kw)
    await store.insert_transaction(tx)
    await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING, Changes(acquirer_id="ACQ1"))
    tx = await store.transition(tx.id, TxState.PENDING, TxState.APPROVED)
    if state is TxState.CAPTURED:
        tx = await store.transition(
            tx.id, TxState.APPROVED, TxState.CAPTURED, Changes(captured_minor=900)
        )
    return tx


async def test_unbatched_captures_and_refunds_join_the_open_batch_once(store: Store) -> None:
    terminal = f"T-{uuid.uuid4().hex[:8]}"  # the sweep sees the whole store: own terminal
    lost_sale = await _in(store, TxState.CAPTURED, terminal_id=terminal)
    lost_refund = await _in(store, TxState.APPROVED, terminal_id=terminal, type=TxType.REFUND)
    joined = await _in(store, TxState.CAPTURED, terminal_id=terminal)
    await store.join_batch(terminal, item_of(joined, ItemKind.SALE), NOW)
    closed = await store.close_batch(terminal, NOW + 1)  # ``joined`` is in batch 1, closed
    await _in(store, TxState.APPROVED, terminal_id=terminal)  # authorized only: no material

    assert await join_unbatched(store, LATER) >= 2  # other tests' rows may join their own
    items = await store.batch_items(terminal, closed.info.batch_no + 1)
    got = {(i.transaction_id, i.kind, i.amount_minor) for i in items}
    assert got == {
        (lost_sale.id, ItemKind.SALE, 900),
        (lost_refund.id, ItemKind.REFUND, lost_refund.amount_minor),
    }
    assert [i.transaction_id for i in await store.batch_items(terminal, 1)] == [joined.id]
    await join_unbatched(store, LATER)  # again: nothing moves
    assert len(await store.batch_items(terminal, closed.info.batch_no + 1)) == 2
