"""The REVERSAL handler on a real SQLite store with a scripted acquirer: a transaction a crash
left PENDING (its idempotency key IN_FLIGHT) is reversed through the queue and the key gets
the 91 answer; an acquirer that refuses leaves the item queued, then dead-lettered."""

import asyncio
import time

from payswitch.v1 import common_pb2, network_pb2, terminal_pb2
from payswitch.world.topology import SafConfig
from switch.domain.idempotency import IdemStatus
from switch.domain.transactions import TxState
from switch.recovery.reversals import Reverser
from switch.recovery.saf import SafQueue
from switch.routing.connectors import OutcomeUnknown
from switch.store.sqlite.store import SqliteStore
from tests.store.storekit import new_tx

FAST = SafConfig(max_attempts=2, base_delay_s=0.001, max_delay_s=0.002, poll_interval_s=0.02)


class Acquirer:
    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.reversed: list[str] = []

    async def reverse(self, msg, timeout):
        if not self.up:
            raise OutcomeUnknown("acq-alpha", None)
        self.reversed.append(msg.original_rrn)
        return network_pb2.NetworkAdviceResult(
            rrn=msg.original_rrn, response_code=common_pb2.RESPONSE_CODE_APPROVED
        )


class Connectors:
    def __init__(self, conn) -> None:
        self.conn = conn

    def get(self, _acquirer_id):
        return self.conn


async def _crashed(store):
    """A PENDING authorization past its deadline whose request never answered."""
    tx = new_tx(scheme="visa", acquirer_id="acq-alpha", deadline_at=time.time() - 5)
    claim = await store.claim_idempotency(
        tx.terminal_id, tx.idempotency_key, "authorize", "fp", 86400, time.time()
    )
    assert claim.claimed
    await store.insert_transaction(tx)
    await store.attach_transaction(tx.terminal_id, tx.idempotency_key, tx.id)
    await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING)
    return tx


async def test_crash_left_pending_is_reversed_and_its_key_answered_91(tmp_path):
    store = SqliteStore(tmp_path / "switch.db", synchronous="normal")
    await store.open()
    acquirer = Acquirer()
    reverser = Reverser(store, Connectors(acquirer), SafQueue(store, FAST))
    try:
        tx = await _crashed(store)
        assert await reverser.scan() == 1
        assert await reverser.wait_idle(timeout=5)
        assert (await store.get_transaction(tx.id)).state is TxState.REVERSED
        assert acquirer.reversed == [tx.rrn]
        record = await store.get_idempotency(tx.terminal_id, tx.idempotency_key, time.time())
        assert record.status is IdemStatus.COMPLETED and record.transaction_id == tx.id
        answer = terminal_pb2.AuthorizeResponse.FromString(record.response)
        assert answer.response_code == common_pb2.RESPONSE_CODE_ISSUER_UNAVAILABLE
        assert (answer.transaction_id, answer.rrn) == (tx.id, tx.rrn)
        assert answer.amount.minor_units == tx.amount_minor
        # A second sweep finds nothing left to do.
        assert await reverser.scan() == 0
    finally:
        await reverser.close()
        await store.close()


async def test_unreachable_acquirer_dead_letters_and_replay_delivers(tmp_path):
    store = SqliteStore(tmp_path / "switch.db", synchronous="normal")
    await store.open()
    acquirer = Acquirer(up=False)
    saf = SafQueue(store, FAST)
    reverser = Reverser(store, Connectors(acquirer), saf)
    try:
        tx = await _crashed(store)
        await reverser.scan()
        for _ in range(200):  # bounded: each pass is immediate, backoff is milliseconds
            await reverser.wait_idle(timeout=5)
            if await saf.list_items(dead=True):
                break
            await asyncio.sleep(0.003)
        [dead] = await saf.list_items(dead=True)
        assert dead.transaction_id == tx.id and dead.attempts == FAST.max_attempts
        assert "no answer from acq-alpha" in dead.last_error
        assert (await store.get_transaction(tx.id)).state is TxState.REVERSAL_PENDING
        # The sweep finds it REVERSAL_PENDING again but does not revive the dead letter.
        await reverser.scan()
        assert [i.id for i in await saf.list_items(dead=True)] == [dead.id]
        acquirer.up = True
        await saf.replay(dead.id)
        assert await reverser.wait_idle(timeout=5)
        assert (await store.get_transaction(tx.id)).state is TxState.REVERSED
        assert acquirer.reversed == [tx.rrn]
    finally:
        await reverser.close()
        await store.close()


async def _approved(store):
    tx = new_tx(scheme="visa", acquirer_id="acq-alpha", deadline_at=time.time() - 60)
    await store.insert_transaction(tx)
    await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING)
    return await store.transition(tx.id, TxState.PENDING, TxState.APPROVED)


async def test_a_void_that_died_in_flight_is_reversed_when_its_intent_comes_due(tmp_path):
    store = SqliteStore(tmp_path / "switch.db", synchronous="normal")
    await store.open()
    acquirer = Acquirer()
    clock = [time.time()]
    saf = SafQueue(store, FAST, clock=lambda: clock[0])
    reverser = Reverser(store, Connectors(acquirer), saf)
    try:
        dead_void, answered_void = await _approved(store), await _approved(store)
        due = clock[0] + 3.0  # the voids' deadline plus grace
        assert await reverser.queue(dead_void.id, not_before=due)
        assert await reverser.queue(answered_void.id, not_before=due)
        assert await reverser.saf.run_once() == 0  # intents: not due while the voids run
        # One void got its answer: VOIDED, and its intent settled (never sent).
        await store.transition(answered_void.id, TxState.APPROVED, TxState.VOIDED)
        await reverser.settle(answered_void.id)
        # The other's process died: its item comes due on a transaction still APPROVED.
        clock[0] = due + 0.1
        assert await reverser.wait_idle(timeout=5)
        assert (await store.get_transaction(dead_void.id)).state is TxState.REVERSED
        assert (await store.get_transaction(answered_void.id)).state is TxState.VOIDED
        assert acquirer.reversed == [dead_void.rrn]
        assert await reverser.saf.list_items(dead=False) == []
    finally:
        await reverser.close()
        await store.close()
