"""The pipeline's store writes: three per authorization (claim; receive + intent; record +
answer), and the outcomes that ride on them (94, route-less 12, unknown 91, an outcome the
store refused) behave as when every step was a write of its own.

Scripted protector, connector and reverser from ``test_pipeline_card_security``; a real SQLite
store that counts the calls the pipeline makes.
"""

from __future__ import annotations

import time

import pytest
from test_pipeline_card_security import TOPOLOGY, Connectors, Protector, ctx, request

from payswitch.v1 import common_pb2, network_pb2, terminal_pb2
from payswitch.world.topology import load
from switch.core.idempotency import IdempotencyGuard
from switch.core.registry import TerminalRegistry
from switch.core.sequences import BlockSequence
from switch.domain.errors import StoreUnavailable
from switch.domain.idempotency import IdemStatus
from switch.domain.transactions import TxState
from switch.pipeline import Pipeline
from switch.routing.connectors import OutcomeUnknown
from switch.routing.router import Router
from switch.services import Services
from switch.store.sqlite.store import SqliteStore

WRITES = {
    "claim_idempotency",
    "put_vault_entry",
    "insert_transaction",
    "attach_transaction",
    "compare_and_set",
    "complete_idempotency",
    "release_idempotency",
    "receive_with_intent",
    "record_with_answer",
}


class CountingStore(SqliteStore):
    """Records the name of every store method the pipeline calls; ``refuse`` makes
    ``record_with_answer`` fail for that target state."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []
        self.refuse: TxState | None = None

    def __getattribute__(self, name: str):
        attr = super().__getattribute__(name)
        if name in WRITES:
            super().__getattribute__("calls").append(name)
        return attr

    async def record_with_answer(self, tx_id, from_state, to_state, changes, answer):
        if to_state is self.refuse:
            raise StoreUnavailable("scripted: the outcome cannot be written")
        return await super().record_with_answer(tx_id, from_state, to_state, changes, answer)


class Reverser:
    def __init__(self) -> None:
        self.scheduled: list[str] = []
        self.unrecorded: list[str] = []

    async def queue(self, tx_id):
        self.scheduled.append(tx_id)
        return True

    def schedule_unrecorded(self, tx):
        self.unrecorded.append(tx.id)


class NoAnswer:
    async def authorize(self, msg, timeout):
        raise OutcomeUnknown(msg.acquirer_id, None)


class RouteLess(Protector):
    async def open_card(self, ksn, ciphertext, pin_block, routes):
        return await super().open_card(ksn, ciphertext, pin_block, {})


@pytest.fixture
async def world(tmp_path):
    topology = load(TOPOLOGY)
    store = CountingStore(tmp_path / "switch.db", synchronous="normal")
    await store.open()
    rrns = BlockSequence(store, "rrn")
    await rrns.next()  # the RRN block (one write per 1000 authorizations) is taken up front

    def make(protector: Protector | None = None) -> tuple[Pipeline, Services]:
        svc = Services(
            config=topology.switch,
            store=store,
            guard=IdempotencyGuard(store),
            protector=protector or Protector(),
            registry=TerminalRegistry(topology),
            router=Router(topology),
            connectors=Connectors(),
            reverser=Reverser(),
            rrns=rrns,
        )
        return Pipeline(svc), svc

    store.calls.clear()
    yield make, store
    await store.close()


async def _answered(store: SqliteStore, key: str, resp: terminal_pb2.AuthorizeResponse) -> None:
    """The key is completed with exactly the answer the terminal got."""
    record = await store.get_idempotency("T-0001", key, time.time())
    assert record.status is IdemStatus.COMPLETED
    assert record.response == resp.SerializeToString()
    assert record.transaction_id == resp.transaction_id


async def test_an_approval_is_three_store_writes(world):
    make, store = world
    pipeline, _ = make()
    resp = await pipeline.run(ctx(request()))
    assert resp.response_code == common_pb2.RESPONSE_CODE_APPROVED
    assert store.calls == ["claim_idempotency", "receive_with_intent", "record_with_answer"]
    tx = await store.get_transaction(resp.transaction_id)
    assert (tx.state, tx.response_code, tx.auth_code) == (TxState.APPROVED, "00", "A1B2C3")
    assert tx.version == 3  # RECEIVED -> PENDING -> APPROVED, each a compare-and-set
    assert resp.auth_code == "A1B2C3" and resp.acquirer_id == tx.acquirer_id != ""
    await _answered(store, "k-1", resp)
    assert await store.get_vault_entry("t" * 64) is not None


async def test_duplicate_transmission_answers_94_and_records_nothing_new(world):
    make, store = world
    pipeline, _ = make()
    first = await pipeline.run(ctx(request("k-1")))
    again = await pipeline.run(ctx(request("k-2")))  # same terminal, STAN, date: other key
    assert again.response_code == common_pb2.RESPONSE_CODE_DUPLICATE_TRANSMISSION
    assert again.transaction_id == ""
    assert (await store.get_transaction(first.transaction_id)).state is TxState.APPROVED
    await _answered(store, "k-2", again)


async def test_no_route_records_received_then_declined_12(world):
    make, store = world
    pipeline, svc = make(RouteLess())
    resp = await pipeline.run(ctx(request()))
    assert resp.response_code == common_pb2.RESPONSE_CODE_INVALID_TRANSACTION
    assert svc.connectors.one.sent == []
    assert store.calls == ["claim_idempotency", "receive_with_intent", "record_with_answer"]
    tx = await store.get_transaction(resp.transaction_id)
    assert (tx.state, tx.response_code, tx.acquirer_id, tx.version) == (
        TxState.DECLINED,
        "12",
        "",
        2,  # RECEIVED -> DECLINED, never PENDING
    )
    await _answered(store, "k-1", resp)


async def test_no_answer_records_unknown_91_and_queues_the_reversal(world):
    make, store = world
    pipeline, svc = make()
    svc.connectors.one = NoAnswer()
    resp = await pipeline.run(ctx(request()))
    assert resp.response_code == common_pb2.RESPONSE_CODE_ISSUER_UNAVAILABLE
    tx = await store.get_transaction(resp.transaction_id)
    assert (tx.state, tx.response_code) == (TxState.UNKNOWN, "91")
    assert svc.reverser.scheduled == [tx.id]
    await _answered(store, "k-1", resp)


async def test_an_approval_the_store_refuses_is_96_and_reversed_never_00(world):
    make, store = world
    store.refuse = TxState.APPROVED
    pipeline, svc = make()
    resp = await pipeline.run(ctx(request()))
    assert resp.response_code == common_pb2.RESPONSE_CODE_SYSTEM_MALFUNCTION
    assert resp.auth_code == ""
    tx = await store.get_transaction(resp.transaction_id)
    assert tx.state is TxState.PENDING  # not recorded: the reverser takes it from here
    assert svc.reverser.unrecorded == [tx.id]
    await _answered(store, "k-1", resp)  # the 96, completed on its own


async def test_a_decline_the_store_refuses_is_96_and_recorded_unknown(world):
    make, store = world
    store.refuse = TxState.DECLINED
    pipeline, svc = make()
    svc.connectors.one.authorize = _decline
    resp = await pipeline.run(ctx(request()))
    assert resp.response_code == common_pb2.RESPONSE_CODE_SYSTEM_MALFUNCTION
    tx = await store.get_transaction(resp.transaction_id)
    assert (tx.state, tx.response_code) == (TxState.UNKNOWN, "96")
    assert svc.reverser.scheduled == [tx.id]
    await _answered(store, "k-1", resp)


async def _decline(msg, timeout):
    return network_pb2.NetworkAuthorizationResult(
        rrn=msg.rrn, response_code=common_pb2.RESPONSE_CODE_DO_NOT_HONOUR
    )


async def test_a_store_failure_at_the_claim_is_unavailable_and_changes_nothing(world):
    """Nothing is held, recorded or sent when the key cannot be claimed: the store error
    reaches the API layer (gRPC UNAVAILABLE: the terminal resends the same request), never a
    96 for a key nobody holds nor an internal error."""
    make, store = world
    pipeline, svc = make()

    async def claim(*args, **kwargs):
        raise StoreUnavailable("scripted: the store is down at the claim")

    store.claim_idempotency = claim
    with pytest.raises(StoreUnavailable):
        await pipeline.run(ctx(request()))
    assert store.calls == ["claim_idempotency"]  # nothing received, recorded or released
    assert svc.reverser.unrecorded == svc.reverser.scheduled == []
    del store.claim_idempotency  # the store is back: the same request now goes through
    resp = await pipeline.run(ctx(request()))
    assert resp.response_code == common_pb2.RESPONSE_CODE_APPROVED
