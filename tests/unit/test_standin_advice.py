"""The ADVICE handler with scripted connectors and protector on a real SQLite store: the
transaction's acquirer first, another of the merchant's when it refuses before sending; the
issuer's 00 moves STOOD_IN -> ADVISED recording the acquirer used; an unknown outcome or a
refusal leaves it STOOD_IN (NotDelivered, the queue retries); the safety-net sweep, only under
the recovery lease, enqueues STOOD_IN transactions that lack an item and sends nothing itself;
the queue delivers, dead-letters after max_attempts, and a replay delivers; an issuer's
refusal is dead-lettered at once with a case naming who is liable, 91 is retried."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from test_pipeline_card_security import TOPOLOGY

from payswitch.v1 import common_pb2, network_pb2
from payswitch.world.topology import SafConfig, load
from switch.core import metrics
from switch.domain.saf import SafKind
from switch.domain.transactions import Changes, Transaction, TxState, TxType
from switch.recovery.advice import Adviser
from switch.recovery.reversals import RECOVERY_LEASE
from switch.recovery.saf import NotDelivered, SafQueue
from switch.recovery.saf import Refused as SafRefused
from switch.routing.connectors import OutcomeUnknown, Refused
from switch.routing.router import Router
from switch.store.sqlite.store import SqliteStore

PAN = "4111111111111111"
TOKEN = "t" * 64
FAST = SafConfig(max_attempts=2, base_delay_s=0.001, max_delay_s=0.002, poll_interval_s=0.02)


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
        code = {
            "ack": common_pb2.RESPONSE_CODE_APPROVED,
            "currency": common_pb2.RESPONSE_CODE_INVALID_TRANSACTION,
            "unavailable": common_pb2.RESPONSE_CODE_ISSUER_UNAVAILABLE,
        }.get(self.mode, common_pb2.RESPONSE_CODE_INVALID_CARD_NUMBER)
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
            tx.id, TxState.RECEIVED, TxState.PENDING, Changes(acquirer_id="acq-alpha")
        )
        return await store.transition(
            tx.id,
            TxState.PENDING,
            TxState.STOOD_IN,
            Changes(response_code="00", auth_code="SW0001"),
        )

    def adviser(alpha: str, beta: str, owner: str = "me") -> Adviser:
        queue = SafQueue(store, FAST, owner=owner)
        return Adviser(
            topology, store, Connectors(alpha, beta), Router(topology), Protector(), queue
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
    ("alpha", "beta", "error"),
    [
        ("unknown", "ack", "acq-alpha: no answer"),
        ("refuse", "refuse", "no acquirer could take it"),
        ("decline", "ack", "acq-alpha: the issuer refused 14; case [0-9a-f]{20}, liable: issuer"),
    ],
)
async def test_no_acknowledgement_leaves_it_stood_in(world, alpha, beta, error):
    store, stood_in, adviser = world
    tx = await stood_in()
    a = adviser(alpha, beta)
    with pytest.raises(NotDelivered, match=error):
        await a.send(tx)
    assert a._connectors.get("acq-beta").sent == []  # sent once may have arrived: no fallback
    assert (await store.get_transaction(tx.id)).state is TxState.STOOD_IN


async def test_sweep_enqueues_stood_in_without_item_only_under_the_lease(world):
    store, stood_in, adviser = world
    txs = [await stood_in(), await stood_in()]
    a = adviser("ack", "ack", owner="me")
    await a.saf.enqueue(SafKind.ADVICE, txs[0].id)  # the pipeline's item: already there
    assert await store.acquire_lease(RECOVERY_LEASE, "someone-else", 30, time.time())
    assert await a.scan() == 0
    other = adviser("ack", "ack", owner="someone-else")
    assert await other.scan() == 1  # only the one lacking an item
    assert await other.scan() == 0  # idempotent
    items = {i.transaction_id: i for i in await other.saf.list_items(dead=False)}
    assert set(items) == {t.id for t in txs}
    assert all(i.kind is SafKind.ADVICE and i.attempts == 0 for i in items.values())
    # The sweep sent nothing; the queue does.
    assert other._connectors.get("acq-alpha").sent == []
    for tx in txs:
        assert (await store.get_transaction(tx.id)).state is TxState.STOOD_IN
    assert await other.saf.run_once() == 2
    assert await other.saf.drain(5)
    for tx in txs:
        assert (await store.get_transaction(tx.id)).state is TxState.ADVISED
    assert await other.saf.list_items(dead=False) == []
    assert await other.scan() == 0  # advised: nothing to enqueue


async def test_advice_dead_letters_after_max_attempts_and_replay_delivers(world):
    store, stood_in, adviser = world
    tx = await stood_in()
    a = adviser("refuse", "refuse")
    await a.saf.enqueue(SafKind.ADVICE, tx.id)
    for _ in range(FAST.max_attempts):
        assert await _attempt_when_due(a) == 1
    (dead,) = await a.saf.list_items(dead=True)
    assert (dead.id, dead.attempts) == (f"ADVICE:{tx.id}", FAST.max_attempts)
    assert dead.last_error == "no acquirer could take it"
    assert await a.saf.run_once() == 0  # a dead letter is never sent again by itself
    assert await a.scan() == 0  # nor revived by the safety net
    for conn in a._connectors.by_id.values():
        conn.mode = "ack"
    await a.saf.replay(dead.id)
    assert await _attempt_when_due(a) == 1
    assert (await store.get_transaction(tx.id)).state is TxState.ADVISED
    assert await a.saf.list_items(dead=True) == []
    assert await a.saf.list_items(dead=False) == []


async def _attempt_when_due(a: Adviser) -> int:
    """Run the queue until one attempt starts (backoff is a few ms), wait for it."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        started = await a.saf.run_once()
        if started:
            assert await a.saf.drain(5)
            return started
        await asyncio.sleep(0.005)
    return 0


@pytest.mark.parametrize(
    ("mode", "answer", "liable"), [("decline", "14", "issuer"), ("currency", "12", "switch")]
)
async def test_a_refused_advice_is_a_case_and_never_retried(world, mode, answer, liable):
    store, stood_in, adviser = world
    tx = await stood_in()
    a = adviser(mode, "ack")
    await a.saf.enqueue(SafKind.ADVICE, tx.id)
    assert await _attempt_when_due(a) == 1
    (dead,) = await a.saf.list_items(dead=True)
    assert dead.attempts == 1  # one answer, one attempt: dead at once, not max_attempts
    assert f"refused {answer}" in dead.last_error and f"liable: {liable}" in dead.last_error
    assert await a.saf.run_once() == 0 and await a.scan() == 0
    (case,) = await store.recon_issues()
    assert (case.type, case.kind, case.rrn, case.transaction_id, case.currency) == (
        "ADVICE_REFUSED",
        "STANDIN",
        tx.rrn,
        tx.id,
        tx.currency,
    )
    detail = json.loads(case.detail)
    assert detail["issuer_answer"] == answer and detail["liable"] == liable
    assert detail["amount_minor"] == tx.amount_minor and detail["acquirer"] == "acq-alpha"
    assert PAN not in case.detail and PAN[-4:] not in case.detail
    assert (await store.get_transaction(tx.id)).state is TxState.STOOD_IN
    assert len(a._connectors.get("acq-alpha").sent) == 1


async def test_an_issuer_that_cannot_decide_is_asked_again(world):
    store, stood_in, adviser = world
    tx = await stood_in()
    a = adviser("unavailable", "ack")
    with pytest.raises(NotDelivered, match="acq-alpha answered 91") as err:
        await a.send(tx)
    assert not isinstance(err.value, SafRefused)
    assert await store.recon_issues() == []
