"""Contract: the back office's page calls (issue 17). ``get_transactions`` reads a page of ids
in one call; ``settle_presented`` applies a settlement report's page (captures CAPTURED ->
SETTLED, refunds APPROVED -> SETTLED) and is a no-op the second time, so a rerun after a crash
settles nothing twice."""

from __future__ import annotations

from storekit import new_tx

from switch.domain.transactions import Changes, Transaction, TxState, TxType
from switch.store.base import Store


async def _approved(store: Store, type_: TxType = TxType.AUTHORIZATION) -> Transaction:
    tx = new_tx(type=type_)
    await store.insert_transaction(tx)
    await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING, Changes(acquirer_id="ACQ1"))
    return await store.transition(tx.id, TxState.PENDING, TxState.APPROVED)


async def _captured(store: Store) -> Transaction:
    tx = await _approved(store)
    return await store.transition(
        tx.id, TxState.APPROVED, TxState.CAPTURED, Changes(captured_minor=tx.amount_minor)
    )


async def test_get_transactions_reads_a_page_in_the_order_asked(store: Store) -> None:
    txs = [await _approved(store) for _ in range(3)]
    ids = [txs[2].id, "no-such-id", txs[0].id, txs[1].id, txs[0].id]
    got = await store.get_transactions(ids)
    assert [t.id for t in got] == [txs[2].id, txs[0].id, txs[1].id]  # unknown and repeat gone
    assert got[1] == await store.get_transaction(txs[0].id)
    assert await store.get_transactions([]) == []


async def test_a_page_settles_captures_and_refunds_once(store: Store) -> None:
    sales = [await _captured(store) for _ in range(3)]
    refund = await _approved(store, TxType.REFUND)
    uncaptured = await _approved(store)  # an authorization not captured: nothing moves
    captures = [s.id for s in sales] + [uncaptured.id, "no-such-id"]
    page = await store.settle_presented(captures, [refund.id], 1_800_000_000.0)
    by_id = {t.id: t for t in page}
    assert set(by_id) == {*(s.id for s in sales), uncaptured.id, refund.id}
    for s in sales:
        assert by_id[s.id].state is TxState.SETTLED and by_id[s.id].version == s.version + 1
        assert by_id[s.id].updated_at == 1_800_000_000.0
    assert by_id[refund.id].state is TxState.SETTLED
    assert by_id[uncaptured.id].state is TxState.APPROVED
    assert by_id[uncaptured.id].version == uncaptured.version
    stored = await store.get_transaction(sales[0].id)
    assert stored is not None and stored.state is TxState.SETTLED
    again = await store.settle_presented(captures, [refund.id], 1_800_000_100.0)  # a rerun
    assert {t.id: (t.state, t.version) for t in again} == {t.id: (t.state, t.version) for t in page}


async def test_a_refund_page_never_settles_an_authorization(store: Store) -> None:
    sale = await _approved(store)
    [after] = await store.settle_presented([], [sale.id], 1_800_000_000.0)
    assert after.state is TxState.APPROVED and after.version == sale.version
