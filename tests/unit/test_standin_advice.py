"""The advice sender with scripted connectors and protector on a real SQLite store: the
transaction's acquirer first, another of the merchant's when it refuses before sending; the
issuer's 00 moves STOOD_IN -> ADVISED recording the acquirer used; an unknown outcome or a
refusal leaves it STOOD_IN for the next sweep; the sweep runs only under the recovery lease."""

from __future__ import annotations

import time

import pytest
from test_pipeline_card_security import TOPOLOGY

from network.topology import load
from payswitch.v1 import common_pb2, network_pb2
from switch import metrics
from switch.advice import Adviser
from switch.connectors import OutcomeUnknown, Refused
from switch.reversals import RECOVERY_LEASE
from switch.routing import Router
from switch.store.base import Transaction, TxState, TxType
from switch.store.sqlite import SqliteStore

PAN = "4111111111111111"
TOKEN = "t" * 64


class Protector:
    async def reveal_pan(self, token, blob):
        assert (token, blob) == (TOKEN, b"sealed")
        return PAN


class Scripted:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sent: list[network_pb2.NetworkAdvice] = []

    async def advise(self, msg, timeout):
        if self.mode == "refuse":
            raise Refused("x", "no connection")
        sent = network_pb2.NetworkAdvice()
        sent.CopyFrom(msg)
        self.sent.append(sent)
        if self.mode == "unknown":
            raise OutcomeUnknown("x", None)
        code = {"ack": common_pb2.RESPONSE_CODE_APPROVED}.get(
            self.mode, common_pb2.RESPONSE_CODE_INVALID_CARD_NUMBER
        )
        return network_pb2.NetworkAdviceResult(rrn=msg.rrn, response_code=code)


class Connectors:
    def __init__(self, alpha: str, beta: str) -> None:
        self.by_id = {"acq-alpha": Scripted(alpha), "acq-beta": Scripted(beta)}

    def get(self, acquirer_id):
        return self.by_id[acquirer_id]


@pytest.fixture
async def world(tmp_path):
    metrics.reset()
    topology = load(TOPOLOGY)
    store = SqliteStore(tmp_path / "switch.db", synchronous="normal")
    await store.open()
    await store.put_vault_entry(TOKEN, b"sealed", 1, time.time())
    n = iter(range(1, 100))

    async def stood_in() -> Transaction:
        i = next(n)
        now = time.time()
        tx = Transaction(
            id=f"tx-{i}",
            type=TxType.AUTHORIZATION,
            state=TxState.RECEIVED,
            terminal_id="T-0001",
            merchant_id="M-GROCER",
            stan=i,
            local_date="2026-11-21",
            local_time="2026-11-21T10:00:00",
            amount_minor=4000,
            currency="EUR",
            card_token=TOKEN,
            masked_pan="411111******1111",
            bin="411111",
            scheme="visa",
            rrn=f"{i:012d}",
            created_at=now,
            updated_at=now,
            deadline_at=now - 1,
            mcc="5411",
        )
        await store.insert_transaction(tx)
        await store.transition(
            tx.id, TxState.RECEIVED, TxState.PENDING, {"acquirer_id": "acq-alpha"}
        )
        return await store.transition(
            tx.id, TxState.PENDING, TxState.STOOD_IN, {"response_code": "00", "auth_code": "SW0001"}
        )

    def adviser(alpha: str, beta: str, owner: str = "me") -> Adviser:
        return Adviser(
            topology, store, Connectors(alpha, beta), Router(topology), Protector(), owner=owner
        )

    yield store, stood_in, adviser
    await store.close()


async def test_acknowledged_advice_is_advised_with_the_card_as_authorized(world):
    store, stood_in, adviser = world
    tx = await stood_in()
    a = adviser("ack", "ack")
    assert await a.send(tx)
    (msg,) = a._connectors.get("acq-alpha").sent
    assert (msg.rrn, msg.pan, msg.auth_code, msg.amount.minor_units) == (
        tx.rrn,
        PAN,
        "SW0001",
        4000,
    )
    assert msg.reason == network_pb2.ADVICE_REASON_STAND_IN and msg.acquirer_id == "acq-alpha"
    assert (await store.get_transaction(tx.id)).state is TxState.ADVISED
    assert await a.send(await store.get_transaction(tx.id))  # already advised: done


async def test_refused_acquirer_falls_back_and_the_one_used_is_recorded(world):
    store, stood_in, adviser = world
    tx = await stood_in()
    assert await adviser("refuse", "ack").send(tx)
    stored = await store.get_transaction(tx.id)
    assert (stored.state, stored.acquirer_id) == (TxState.ADVISED, "acq-beta")


@pytest.mark.parametrize(
    ("alpha", "beta"), [("unknown", "ack"), ("refuse", "refuse"), ("decline", "ack")]
)
async def test_no_acknowledgement_leaves_it_stood_in(world, alpha, beta):
    store, stood_in, adviser = world
    tx = await stood_in()
    a = adviser(alpha, beta)
    assert not await a.send(tx)
    assert a._connectors.get("acq-beta").sent == []  # sent once may have arrived: no fallback
    assert (await store.get_transaction(tx.id)).state is TxState.STOOD_IN


async def test_sweep_advises_every_stood_in_only_under_the_lease(world):
    store, stood_in, adviser = world
    txs = [await stood_in(), await stood_in()]
    assert await store.acquire_lease(RECOVERY_LEASE, "someone-else", 30, time.time())
    assert await adviser("ack", "ack", owner="me").scan() == 0
    assert await adviser("ack", "ack", owner="someone-else").scan() == 2
    for tx in txs:
        assert (await store.get_transaction(tx.id)).state is TxState.ADVISED
