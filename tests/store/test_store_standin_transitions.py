"""Contract: a stand-in sale is captured (STOOD_IN | ADVISED -> CAPTURED) and voided
(-> VOIDED | REVERSAL_PENDING) only by a compare-and-set that expects the AUTHORIZATION type
(``TYPED_TRANSITIONS``), on both backends; ARCHITECTURE.md's machine is unchanged."""

from __future__ import annotations

import pytest
from storekit import new_tx

from switch.domain.transactions import (
    TRANSITIONS,
    CasFailed,
    Changes,
    IllegalTransition,
    TxState,
    TxType,
)
from switch.store.base import Store


async def _stood_in(store: Store, advised: bool = False):
    tx = new_tx()
    await store.insert_transaction(tx)
    await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING, Changes(acquirer_id="ACQ1"))
    tx = await store.transition(
        tx.id, TxState.PENDING, TxState.STOOD_IN, Changes(auth_code="SW0001")
    )
    if advised:
        tx = await store.transition(tx.id, TxState.STOOD_IN, TxState.ADVISED)
    return tx


@pytest.mark.parametrize("advised", [False, True])
async def test_a_stand_in_is_captured_by_a_typed_compare_and_set(store: Store, advised) -> None:
    tx = await _stood_in(store, advised)
    with pytest.raises(IllegalTransition):  # the untyped transition is not in the machine
        await store.transition(tx.id, tx.state, TxState.CAPTURED)
    done = await store.typed_transition(
        tx.id, tx.state, TxState.CAPTURED, TxType.AUTHORIZATION, Changes(captured_minor=1000)
    )
    assert (done.state, done.captured_minor) == (TxState.CAPTURED, 1000)
    with pytest.raises(CasFailed):  # once
        await store.typed_transition(tx.id, tx.state, TxState.CAPTURED, TxType.AUTHORIZATION)
    settled = await store.transition(tx.id, TxState.CAPTURED, TxState.SETTLED)
    assert settled.state is TxState.SETTLED


@pytest.mark.parametrize("to", [TxState.VOIDED, TxState.REVERSAL_PENDING])
async def test_a_stand_in_is_voided_by_a_typed_compare_and_set(store: Store, to) -> None:
    tx = await _stood_in(store)
    assert (await store.typed_transition(tx.id, tx.state, to, TxType.AUTHORIZATION)).state is to


async def test_the_refund_type_is_refused_for_a_stand_in_transition(store: Store) -> None:
    tx = await _stood_in(store)
    with pytest.raises(IllegalTransition):
        await store.typed_transition(tx.id, TxState.STOOD_IN, TxState.CAPTURED, TxType.REFUND)
    assert (await store.get_transaction(tx.id)).state is TxState.STOOD_IN


def test_the_design_machine_is_unchanged_for_stand_ins() -> None:
    assert TRANSITIONS[TxState.STOOD_IN] == frozenset({TxState.ADVISED})
    assert TRANSITIONS[TxState.ADVISED] == frozenset()
