"""Contract: a settled refund goes APPROVED -> SETTLED, a transition of REFUND transactions
only (``TYPED_TRANSITIONS``), checked before the store is touched and by the store's
compare-and-set on the type."""

from __future__ import annotations

import pytest
from storekit import new_tx

from switch.backoffice.settlement.run import settle_refund
from switch.domain.transactions import (
    TRANSITIONS,
    Changes,
    Expect,
    IllegalTransition,
    TxState,
    TxType,
    check_transition,
)
from switch.store.base import Store


async def _approved(store: Store, type_: TxType):
    tx = new_tx(type=type_)
    await store.insert_transaction(tx)
    await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING, Changes(acquirer_id="ACQ1"))
    return await store.transition(tx.id, TxState.PENDING, TxState.APPROVED)


async def test_a_refund_settles_from_approved_once(store: Store) -> None:
    refund = await _approved(store, TxType.REFUND)
    done = await settle_refund(store, refund)
    assert done.state is TxState.SETTLED and done.version == refund.version + 1
    again = await settle_refund(store, refund)  # a repeated run: nothing moves
    assert again.state is TxState.SETTLED and again.version == done.version


async def test_an_authorization_cannot_skip_its_capture(store: Store) -> None:
    sale = await _approved(store, TxType.AUTHORIZATION)
    with pytest.raises(IllegalTransition):
        await store.transition(sale.id, TxState.APPROVED, TxState.SETTLED)
    with pytest.raises(IllegalTransition):  # without the type in the compare-and-set
        await store.compare_and_set(
            sale.id, Expect(state=TxState.APPROVED), Changes(state="SETTLED")
        )
    # With the REFUND type expected, the row's own type refuses it.
    assert (await settle_refund(store, sale)).state is TxState.APPROVED
    assert (await store.get_transaction(sale.id)).state is TxState.APPROVED


def test_the_typed_transition_is_outside_the_design_machine() -> None:
    assert TxState.SETTLED not in TRANSITIONS[TxState.APPROVED]
    check_transition(TxState.APPROVED, TxState.SETTLED, TxType.REFUND)
    with pytest.raises(IllegalTransition):
        check_transition(TxState.APPROVED, TxState.SETTLED, TxType.AUTHORIZATION)
