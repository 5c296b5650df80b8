"""Contract: bulk load (``switch.store.imports``) on every backend: rows as given, their
lookups (by state, refunds by original, batches), idempotent, never undoing a later change."""

import pytest
from storekit import NOW, new_tx

from switch.domain.batches import BatchItem, ItemKind
from switch.domain.transactions import Changes, TxState, TxType


def _day():
    sale = new_tx(state=TxState.CAPTURED, captured_minor=1000, amount_minor=1200)
    voided = new_tx(state=TxState.VOIDED)
    refund = new_tx(
        type=TxType.REFUND, state=TxState.APPROVED, original_id=sale.id, amount_minor=300
    )
    return sale, voided, refund


async def test_imported_rows_read_back_with_their_lookups(store):
    sale, voided, refund = _day()
    await store.import_transactions([sale, voided, refund])
    assert await store.get_transaction(sale.id) == sale
    assert await store.get_transaction(refund.id) == refund
    captured = await store.transactions_in_state(TxState.CAPTURED, NOW + 60, 100)
    assert [t.id for t in captured] == [sale.id]
    assert [t.id for t in await store.transactions_in_state(TxState.VOIDED, NOW + 60)] == [
        voided.id
    ]
    assert [t.id for t in await store.refunds_of(sale.id)] == [refund.id]
    # the compare-and-set machinery works on an imported row
    moved = await store.transition(sale.id, TxState.CAPTURED, TxState.SETTLED, Changes())
    assert moved.state is TxState.SETTLED and moved.version == sale.version + 1


async def test_import_again_keeps_what_moved_since(store):
    sale, voided, refund = _day()
    await store.import_transactions([sale, voided, refund])
    await store.transition(sale.id, TxState.CAPTURED, TxState.SETTLED, Changes())
    await store.import_transactions([sale, voided, refund])  # a rerun of the generator
    again = await store.get_transaction(sale.id)
    assert again is not None and again.state is TxState.SETTLED
    assert await store.transactions_in_state(TxState.CAPTURED, NOW + 60) == []


async def test_a_bad_row_writes_nothing(store):
    good = new_tx(state=TxState.APPROVED)
    bad = new_tx(state=TxState.APPROVED, amount_minor=12.5)
    with pytest.raises(ValueError, match="amount_minor"):
        await store.import_transactions([good, bad])
    assert await store.get_transaction(good.id) is None


async def test_imported_items_join_the_open_batch_once(store):
    items = [
        ("TI1", BatchItem("s1", ItemKind.SALE, 1000, "EUR", "visa", NOW)),
        ("TI1", BatchItem("r1", ItemKind.REFUND, 300, "EUR", "visa", NOW + 1)),
        ("TI2", BatchItem("v1", ItemKind.VOID, 500, "USD", "mastercard", NOW)),
    ]
    await store.import_batch_items(items)
    assert [i.transaction_id for i in await store.batch_items("TI1", 1)] == ["s1", "r1"]
    closed = await store.close_batch("TI1", NOW + 10)
    assert [i.transaction_id for i in closed.items] == ["s1", "r1"]
    await store.import_batch_items(items)  # a rerun: s1, r1 stay in batch 1
    assert await store.batch_items("TI1", 2) == []
    assert await store.join_batch("TI2", items[2][1], NOW) == 1
    with pytest.raises(ValueError):
        await store.import_batch_items(
            [("TI3", BatchItem("", ItemKind.SALE, 1, "EUR", "visa", NOW))]
        )
