"""The REVERSAL handler on a dead void (its item comes due on a transaction still APPROVED, or
a stand-in still STOOD_IN/ADVISED), real SQLite store, scripted acquirer: the reversal is sent
before any state moves, so an issuer's refusal (12: captured at the issuer) leaves the sale as
it was and the item done (never a REVERSAL_PENDING left to dead-letter); an acknowledged one
ends REVERSED, sent once, and joins the terminal's batch as a VOID."""

import time

import pytest

from payswitch.v1 import common_pb2
from switch.domain.batches import ItemKind
from switch.domain.transactions import Changes, TxState
from switch.recovery.reversals import Reverser
from switch.recovery.saf import SafQueue
from tests.store.storekit import new_tx
from tests.unit.reversal_kit import FAST, ScriptedAcquirer


async def _in(store, state: TxState):
    tx = new_tx(scheme="visa", acquirer_id="acq-alpha", deadline_at=time.time() - 60)
    await store.insert_transaction(tx)
    await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING)
    if state is TxState.APPROVED:
        return await store.transition(
            tx.id, TxState.PENDING, TxState.APPROVED, Changes(response_code="00")
        )
    tx = await store.transition(
        tx.id, TxState.PENDING, TxState.STOOD_IN, Changes(response_code="00", auth_code="SW0001")
    )
    if state is TxState.ADVISED:
        tx = await store.transition(tx.id, TxState.STOOD_IN, TxState.ADVISED)
    return tx


async def _run_dead_void(store, tx, code: int) -> tuple[ScriptedAcquirer, Reverser]:
    acquirer = ScriptedAcquirer(code)
    reverser = Reverser(store, acquirer, SafQueue(store, FAST))
    assert await reverser.queue(tx.id)  # the void's intent, its request dead
    assert await reverser.wait_idle(timeout=5)
    await reverser.close()
    return acquirer, reverser


async def test_a_dead_void_the_issuer_refused_leaves_the_sale_approved(store) -> None:
    tx = await _in(store, TxState.APPROVED)
    acquirer, reverser = await _run_dead_void(
        store, tx, common_pb2.RESPONSE_CODE_INVALID_TRANSACTION
    )
    assert acquirer.reversed == [tx.rrn]  # asked once, refused: never resent
    assert (await store.get_transaction(tx.id)).state is TxState.APPROVED
    assert await reverser.saf.list_items(dead=False) == []
    assert await reverser.saf.list_items(dead=True) == []
    no = await store.open_batch_no(tx.terminal_id, time.time())
    assert await store.batch_items(tx.terminal_id, no) == []


@pytest.mark.parametrize("state", [TxState.APPROVED, TxState.STOOD_IN, TxState.ADVISED])
async def test_a_dead_void_acknowledged_ends_reversed_and_joins_the_batch(store, state) -> None:
    tx = await _in(store, state)
    acquirer, _ = await _run_dead_void(store, tx, common_pb2.RESPONSE_CODE_APPROVED)
    assert acquirer.reversed == [tx.rrn]  # sent once
    assert (await store.get_transaction(tx.id)).state is TxState.REVERSED
    no = await store.open_batch_no(tx.terminal_id, time.time())
    items = [i for i in await store.batch_items(tx.terminal_id, no) if i.transaction_id == tx.id]
    assert [(i.kind, i.amount_minor) for i in items] == [(ItemKind.VOID, tx.amount_minor)]


async def test_a_timed_out_authorization_reversed_is_no_void(store) -> None:
    tx = new_tx(scheme="visa", acquirer_id="acq-alpha", deadline_at=time.time() - 60)
    await store.insert_transaction(tx)
    await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING)
    await store.transition(tx.id, TxState.PENDING, TxState.UNKNOWN, Changes(response_code="91"))
    await _run_dead_void(store, tx, common_pb2.RESPONSE_CODE_APPROVED)
    assert (await store.get_transaction(tx.id)).state is TxState.REVERSED
    no = await store.open_batch_no(tx.terminal_id, time.time())
    assert await store.batch_items(tx.terminal_id, no) == []
