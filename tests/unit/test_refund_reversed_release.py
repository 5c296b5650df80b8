"""A refund recovery reverses (its answer never came: UNKNOWN -> REVERSAL_PENDING -> REVERSED)
gives its reservation on the sale back (campaign seeds 3018 and 3056: the sale kept it forever,
so the merchant could never refund that amount again). Real SQLite store, scripted acquirer."""

import time

from switch.domain.transactions import Changes, TxState, TxType
from switch.recovery.refund_reservations import release_reversed, reserve
from switch.recovery.reversals import Reverser
from switch.recovery.saf import SafQueue
from tests.store.storekit import new_tx
from tests.unit.reversal_kit import FAST, ScriptedAcquirer


async def _sale(store, captured: int):
    tx = new_tx(scheme="visa", acquirer_id="acq-alpha")
    await store.insert_transaction(tx)
    await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING)
    await store.transition(tx.id, TxState.PENDING, TxState.APPROVED, Changes(response_code="00"))
    return await store.transition(
        tx.id, TxState.APPROVED, TxState.CAPTURED, Changes(captured_minor=captured)
    )


async def _refund(store, sale, amount: int, state: TxState):
    deadline = time.time() + (60 if state is TxState.RECEIVED else -1)  # RECEIVED: live
    tx = new_tx(
        type=TxType.REFUND, original_id=sale.id, amount_minor=amount, scheme="visa",
        acquirer_id="acq-alpha", deadline_at=deadline,
    )  # fmt: skip
    await store.insert_transaction(tx)
    assert await reserve(store, sale.id, amount)
    if state is TxState.RECEIVED:
        return tx
    await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING)
    if state is TxState.APPROVED:
        return await store.transition(tx.id, TxState.PENDING, TxState.APPROVED)
    return await store.transition(tx.id, TxState.PENDING, TxState.UNKNOWN)


async def test_a_reversed_refund_releases_its_reservation_once(store) -> None:
    sale = await _sale(store, 5_000)
    await _refund(store, sale, 1_000, TxState.APPROVED)  # holds its 1,000
    lost = await _refund(store, sale, 2_000, TxState.UNKNOWN)  # answered 91
    assert (await store.get_transaction(sale.id)).refunded_minor == 3_000
    acquirer = ScriptedAcquirer()
    reverser = Reverser(store, acquirer, SafQueue(store, FAST))
    assert await reverser.queue(lost.id)
    assert await reverser.wait_idle(timeout=5)
    await reverser.close()
    assert acquirer.reversed == [lost.rrn]
    assert (await store.get_transaction(lost.id)).state is TxState.REVERSED
    assert (await store.get_transaction(sale.id)).refunded_minor == 1_000
    # again (a retried item, another worker): nothing more is released
    assert await release_reversed(store, await store.get_transaction(lost.id))
    assert (await store.get_transaction(sale.id)).refunded_minor == 1_000


async def test_the_release_waits_while_another_refund_of_the_sale_is_reserving(store) -> None:
    sale = await _sale(store, 5_000)
    lost = await _refund(store, sale, 2_000, TxState.UNKNOWN)
    await _refund(store, sale, 500, TxState.RECEIVED)  # live: it may have reserved or not
    await store.transition(lost.id, TxState.UNKNOWN, TxState.REVERSAL_PENDING)
    lost = await store.transition(lost.id, TxState.REVERSAL_PENDING, TxState.REVERSED)
    assert not await release_reversed(store, lost)  # undecided: the item retries later
    assert (await store.get_transaction(sale.id)).refunded_minor == 2_500
