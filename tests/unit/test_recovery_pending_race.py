"""The recovery sweep against a live request on the same PENDING transaction (fault campaign
seed 2004: a restarting switch answered 00, then reversed that very approval as a dead void).

Real SQLite store, scripted acquirer. Whoever moves the PENDING transaction first decides: the
sweep (PENDING -> UNKNOWN, then its reversal; the request's own record then fails) or the request
(APPROVED: the sweep queues nothing and no reversal is ever sent)."""

import time

import pytest

from switch.domain.transactions import CasFailed, Changes, TxState
from switch.recovery.reversals import Reverser
from switch.recovery.saf import SafQueue
from tests.store.storekit import new_tx
from tests.unit.reversal_kit import FAST, ScriptedAcquirer


async def _pending_past_deadline(store):
    tx = new_tx(scheme="visa", acquirer_id="acq-alpha", deadline_at=time.time() - 1)
    await store.insert_transaction(tx)
    return await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING)


async def test_the_sweep_first_the_request_cannot_record_an_approval(store) -> None:
    tx = await _pending_past_deadline(store)
    acquirer = ScriptedAcquirer()
    reverser = Reverser(store, acquirer, SafQueue(store, FAST))
    assert await reverser.recover() == 1
    assert (await store.get_transaction(tx.id)).state is TxState.UNKNOWN
    with pytest.raises(CasFailed):  # the live request's record, after the sweep
        await store.transition(
            tx.id, TxState.PENDING, TxState.APPROVED, Changes(response_code="00")
        )
    assert await reverser.wait_idle(timeout=5)
    await reverser.close()
    assert acquirer.reversed == [tx.rrn]
    assert (await store.get_transaction(tx.id)).state is TxState.REVERSED


async def test_the_request_first_the_sweep_reverses_nothing(store) -> None:
    tx = await _pending_past_deadline(store)
    acquirer = ScriptedAcquirer()
    reverser = Reverser(store, acquirer, SafQueue(store, FAST))
    # The request records its approval after the sweep read the row PENDING, before it moved it.
    await store.transition(tx.id, TxState.PENDING, TxState.APPROVED, Changes(response_code="00"))
    assert not await reverser._abandon(tx)  # the row the sweep read: PENDING
    assert await reverser.saf.list_items(dead=False) == []
    # An item queued for the PENDING row earlier (older code, or a queue that raced) that finds
    # it approved settles with nothing sent: it is no void's intent.
    assert await reverser.reverse_once(tx)
    await reverser.close()
    assert acquirer.reversed == []
    assert (await store.get_transaction(tx.id)).state is TxState.APPROVED
