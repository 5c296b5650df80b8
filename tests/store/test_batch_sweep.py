"""The cut-off's sweep (``switch.backoffice.batches.sweep``): a capture or refund whose batch join
failed (marked unbatched) joins its terminal's open batch at the next cut-off; what is in a batch
already stays there; a mark is forgotten once handled; on every backend."""

from __future__ import annotations

import uuid

from storekit import NOW, new_tx

from switch.backoffice.batches.join import item_of
from switch.backoffice.batches.sweep import join_unbatched
from switch.domain.batches import BatchItem, BatchState, ItemKind
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
    terminal = f"T-{uuid.uuid4().hex[:8]}"
    lost_sale = await _in(store, TxState.CAPTURED, terminal_id=terminal)
    lost_refund = await _in(store, TxState.APPROVED, terminal_id=terminal, type=TxType.REFUND)
    joined = await _in(store, TxState.CAPTURED, terminal_id=terminal)
    await store.join_batch(terminal, item_of(joined, ItemKind.SALE), NOW)
    closed = await store.close_batch(terminal, NOW + 1)  # ``joined`` is in batch 1, closed
    voided_since = await _in(store, TxState.APPROVED, terminal_id=terminal)  # not material now
    unmarked = await _in(store, TxState.CAPTURED, terminal_id=terminal)  # never marked: not read
    await store.mark_unbatched(terminal, lost_sale.id, ItemKind.SALE, NOW)
    await store.mark_unbatched(terminal, lost_sale.id, ItemKind.SALE, NOW + 1)  # one mark
    await store.mark_unbatched(terminal, lost_refund.id, ItemKind.REFUND, NOW)
    await store.mark_unbatched(terminal, joined.id, ItemKind.SALE, NOW)  # joined after all
    await store.mark_unbatched(terminal, voided_since.id, ItemKind.SALE, NOW)
    marks = await store.unbatched(10)
    assert sorted((m.transaction_id, m.kind) for m in marks if m.terminal_id == terminal) == sorted(
        [
            (lost_sale.id, ItemKind.SALE),
            (lost_refund.id, ItemKind.REFUND),
            (joined.id, ItemKind.SALE),
            (voided_since.id, ItemKind.SALE),
        ],
        key=lambda m: m[0],
    )

    assert await join_unbatched(store, LATER) == 4
    items = await store.batch_items(terminal, closed.info.batch_no + 1)
    got = {(i.transaction_id, i.kind, i.amount_minor) for i in items}
    assert got == {
        (lost_sale.id, ItemKind.SALE, 900),
        (lost_refund.id, ItemKind.REFUND, lost_refund.amount_minor),
    }
    assert unmarked.id not in {i.transaction_id for i in items}
    assert [i.transaction_id for i in await store.batch_items(terminal, 1)] == [joined.id]
    assert await store.unbatched(10) == []  # every mark handled and forgotten
    assert await join_unbatched(store, LATER) == 0  # again: nothing moves
    assert len(await store.batch_items(terminal, closed.info.batch_no + 1)) == 2


async def test_closed_batches_lists_what_is_not_cleared_yet(store: Store) -> None:
    a, b = f"T-{uuid.uuid4().hex[:8]}", f"T-{uuid.uuid4().hex[:8]}"
    for terminal in (a, b):
        tx = await _in(store, TxState.CAPTURED, terminal_id=terminal)
        await store.join_batch(terminal, item_of(tx, ItemKind.SALE), NOW)
        await store.close_batch(terminal, NOW + 1)
    await store.close_batch(a, NOW + 2)  # an empty second batch of ``a``
    mine = [x for x in await store.closed_batches(100) if x.terminal_id in (a, b)]
    assert sorted((x.terminal_id, x.batch_no) for x in mine) == sorted([(a, 1), (a, 2), (b, 1)])
    assert {x.state for x in mine} == {BatchState.CLOSED}
    await store.mark_batch_cleared(a, 1)
    mine = [x for x in await store.closed_batches(100) if x.terminal_id in (a, b)]
    assert sorted((x.terminal_id, x.batch_no) for x in mine) == sorted([(a, 2), (b, 1)])
    log = await store.batches_of(a)
    assert [(x.batch_no, x.state) for x in log] == [(2, BatchState.CLOSED), (1, BatchState.CLEARED)]


async def test_a_batch_is_read_in_pages_by_transaction_id(store: Store) -> None:
    terminal = f"T-{uuid.uuid4().hex[:8]}"
    ids = [f"p{n}-{uuid.uuid4().hex[:6]}" for n in (3, 1, 4, 0, 2)]
    for tx_id in ids:
        await store.join_batch(
            terminal, BatchItem(tx_id, ItemKind.SALE, 7, "EUR", "visa", NOW), NOW
        )
    pages, after = [], ""
    for _ in range(10):  # bounded
        page = await store.batch_items_page(terminal, 1, after, 2)
        if not page:
            break
        pages.append([i.transaction_id for i in page])
        after = page[-1].transaction_id
    assert pages == [sorted(ids)[:2], sorted(ids)[2:4], sorted(ids)[4:]]
    closed = await store.close_batch(terminal, NOW + 1, with_items=False)
    assert closed.items == () and closed.info.batch_no == 1
    assert len(await store.batch_items_page(terminal, 1, "", 10)) == 5  # still all there
    assert await store.batch_items_page(terminal, 2, "", 10) == []


async def test_a_capture_marked_before_its_transition_is_joined_if_its_join_never_came(
    store: Store,
) -> None:
    """Capture marks first (``batches.join.intend``): a young mark whose transaction is not
    CAPTURED yet belongs to a request that may still run and is kept; once CAPTURED with no join
    (its process died), the sweep joins it; an old mark that never became material is dropped."""
    terminal = f"T-{uuid.uuid4().hex[:8]}"
    in_flight = await _in(store, TxState.APPROVED, terminal_id=terminal)
    declined = await _in(store, TxState.APPROVED, terminal_id=terminal)
    await store.mark_unbatched(terminal, declined.id, ItemKind.SALE, NOW - 60)  # long ago
    await store.mark_unbatched(terminal, in_flight.id, ItemKind.SALE, NOW)
    await join_unbatched(store, NOW + 1)
    mine = [m.transaction_id for m in await store.unbatched(100) if m.terminal_id == terminal]
    assert mine == [in_flight.id]  # the declined capture's mark is forgotten, this one kept

    await store.transition(
        in_flight.id, TxState.APPROVED, TxState.CAPTURED, Changes(captured_minor=700)
    )  # ... and the process dies before its join
    await join_unbatched(store, NOW + 2)
    open_no = await store.open_batch_no(terminal, NOW + 2)
    items = await store.batch_items(terminal, open_no)
    assert [(i.transaction_id, i.kind, i.amount_minor) for i in items] == [
        (in_flight.id, ItemKind.SALE, 700)
    ]
    assert [m for m in await store.unbatched(100) if m.terminal_id == terminal] == []
