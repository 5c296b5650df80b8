"""Failover in the pipeline with scripted connectors and a real SQLite store: a refusal before
sending moves on to the next acquirer (PIN translated for it, acquirer_id moved before the
send); an open circuit is skipped without a call; an unknown outcome is never failed over;
every acquirer refusing goes to stand-in (STOOD_IN, 00, stood_in) or, without it, 91."""

from __future__ import annotations

import pytest
from test_pipeline_card_security import TOPOLOGY, Protector, ctx, request
from test_pipeline_writes import Reverser

from hsm.errors import HsmError
from payswitch.v1 import common_pb2, network_pb2
from payswitch.world.topology import StandInConfig, load
from switch.core import metrics
from switch.core.idempotency import IdempotencyGuard
from switch.core.registry import TerminalRegistry
from switch.core.sequences import BlockSequence
from switch.domain.standin import CardVerdict
from switch.domain.transactions import TxState
from switch.pipeline import Pipeline
from switch.routing.breakers import Breakers
from switch.routing.connectors import OutcomeUnknown, Refused
from switch.routing.router import Router
from switch.routing.standin import StandIn
from switch.services import Services
from switch.store.sqlite.store import SqliteStore


class Translating(Protector):
    def __init__(self) -> None:
        super().__init__()
        self.translated: list[str] = []

    async def translate_pin(self, ksn, pin_block, pan, acquirer_id):
        self.translated.append(acquirer_id)
        return b"Z" * 16


async def verified(card):
    """Stand-in's card check, passing (a fake: the HSM job is tested on real processes)."""
    assert card.pan and card.ksn  # the stage hands the opened card and its KSN over
    return CardVerdict(None, "verified", "bank-a")


class Scripted:
    """One acquirer: ``mode`` refuse | unknown | approve; records what it was sent."""

    def __init__(self, acquirer_id: str, mode: str, store=None) -> None:
        self.id, self.mode, self.store = acquirer_id, mode, store
        self.sent: list[network_pb2.NetworkAuthorization] = []
        self.stored_acquirer: list[str] = []

    async def authorize(self, msg, timeout, prepare=None):
        if self.mode == "refuse":
            raise Refused(self.id, "no connection")
        if prepare is not None:
            msg = await prepare()
        self.sent.append(msg)
        if self.store is not None:  # what the store said while the request was out
            pending = await self.store.transactions_in_state(TxState.PENDING, float("inf"))
            self.stored_acquirer += [tx.acquirer_id for tx in pending if tx.rrn == msg.rrn]
        if self.mode == "unknown":
            raise OutcomeUnknown(self.id, None)
        return network_pb2.NetworkAuthorizationResult(
            rrn=msg.rrn, response_code=common_pb2.RESPONSE_CODE_APPROVED, auth_code="ISS123"
        )


class Connectors:
    def __init__(self, **by_id) -> None:
        self.by_id = by_id

    def get(self, acquirer_id):
        return self.by_id[acquirer_id]


@pytest.fixture
async def world(tmp_path):
    metrics.reset()
    topology = load(TOPOLOGY)
    store = SqliteStore(tmp_path / "switch.db", synchronous="normal")
    await store.open()

    def make(
        alpha: str,
        beta: str,
        *,
        standin: StandInConfig | None = None,
        breakers=None,
        verifier=verified,
    ):
        protector = Translating()
        connectors = Connectors(
            **{
                "acq-alpha": Scripted("acq-alpha", alpha, store),
                "acq-beta": Scripted("acq-beta", beta, store),
            }
        )
        svc = Services(
            config=topology.switch,
            store=store,
            guard=IdempotencyGuard(store),
            protector=protector,
            registry=TerminalRegistry(topology),
            router=Router(topology, breakers),
            connectors=connectors,
            reverser=Reverser(),
            rrns=BlockSequence(store, "rrn"),
            breakers=breakers,
            standin=StandIn(standin, store, verifier=verifier) if standin else None,
        )
        return Pipeline(svc), svc

    yield make, store, topology
    await store.close()


def code(resp) -> str:
    return f"{resp.response_code - 100:02d}"


async def test_refused_first_acquirer_fails_over_with_pin_and_acquirer_moved(world):
    make, store, _ = world
    pipeline, svc = make("refuse", "approve")
    resp = await pipeline.run(ctx(request()))
    assert code(resp) == "00" and resp.acquirer_id == "acq-beta" and not resp.stood_in
    beta = svc.connectors.get("acq-beta")
    (msg,) = beta.sent
    assert msg.pin_block == b"Z" * 16  # translated for beta, not alpha's block
    assert msg.acquirer_id == "acq-beta"
    assert beta.stored_acquirer == ["acq-beta"]  # recorded before the request left
    assert svc.protector.translated == ["acq-beta"]
    tx = await store.get_transaction(resp.transaction_id)
    assert (tx.state, tx.acquirer_id, tx.auth_code) == (TxState.APPROVED, "acq-beta", "ISS123")


async def test_unknown_outcome_is_never_failed_over(world):
    make, store, _ = world
    pipeline, svc = make("unknown", "approve")
    resp = await pipeline.run(ctx(request()))
    assert code(resp) == "91"
    assert svc.connectors.get("acq-beta").sent == []
    tx = await store.get_transaction(resp.transaction_id)
    assert (tx.state, tx.acquirer_id) == (TxState.UNKNOWN, "acq-alpha")
    assert svc.reverser.scheduled == [tx.id]


async def test_open_circuit_is_skipped_without_a_call_and_routed_second(world):
    make, _, topology = world
    breakers = Breakers(["acq-alpha", "acq-beta"], topology.breaker)
    for _ in range(topology.breaker.failure_threshold):
        breakers.get("acq-alpha").failure()
    pipeline, svc = make("approve", "approve", breakers=breakers)
    resp = await pipeline.run(ctx(request()))
    assert code(resp) == "00" and resp.acquirer_id == "acq-beta"
    assert svc.connectors.get("acq-alpha").sent == []
    assert svc.protector.translated == []  # beta was first: translated in the open job


async def test_every_acquirer_refusing_stands_in(world):
    make, store, _ = world
    cfg = StandInConfig(enabled=True, floor=(("EUR", 5000),))
    pipeline, svc = make("refuse", "refuse", standin=cfg)
    resp = await pipeline.run(ctx(request()))
    assert code(resp) == "00" and resp.stood_in and len(resp.auth_code) == 6
    tx = await store.get_transaction(resp.transaction_id)
    assert (tx.state, tx.response_code, tx.auth_code) == (TxState.STOOD_IN, "00", resp.auth_code)
    assert svc.reverser.scheduled == []
    # Nothing was prepared for beta: it refused before its prepare step.
    assert tx.acquirer_id == "acq-alpha" and tx.version == 3
    assert svc.protector.translated == []


async def test_every_acquirer_refusing_without_stand_in_is_91_declined(world):
    make, store, _ = world
    pipeline, _ = make("refuse", "refuse")
    resp = await pipeline.run(ctx(request()))
    assert code(resp) == "91" and not resp.stood_in
    tx = await store.get_transaction(resp.transaction_id)
    assert (tx.state, tx.response_code) == (TxState.DECLINED, "91")


async def test_stand_in_decline_is_recorded_with_the_rule_code(world):
    make, store, _ = world
    cfg = StandInConfig(enabled=True, floor=(("EUR", 1000),))
    pipeline, _ = make("refuse", "refuse", standin=cfg)
    resp = await pipeline.run(ctx(request()))  # 1250 EUR minor > 1000
    assert code(resp) == "61" and resp.auth_code == ""
    tx = await store.get_transaction(resp.transaction_id)
    assert (tx.state, tx.response_code) == (TxState.DECLINED, "61")


async def test_stand_in_with_the_hsm_down_is_96_never_approved(world):
    make, store, _ = world

    async def hsm_down(card):
        raise HsmError("token gone")

    cfg = StandInConfig(enabled=True, floor=(("EUR", 5000),))
    pipeline, _ = make("refuse", "refuse", standin=cfg, verifier=hsm_down)
    resp = await pipeline.run(ctx(request()))
    assert code(resp) == "96" and not resp.stood_in and resp.auth_code == ""
    tx = await store.get_transaction(resp.transaction_id)
    assert (tx.state, tx.response_code) == (TxState.DECLINED, "96")
