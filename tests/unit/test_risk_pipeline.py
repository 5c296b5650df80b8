"""The "risk" stage in the pipeline, on a real SQLite store with the shipped rules: a decline
is recorded with its decision and never leaves the switch, a step-up asks for the PIN, the
fallback decides when the store is slow or down, a shadow set only counts, a changed rule
file is swapped in (a bad one refused). Scripted protector and connector (no HSM, no
network): the end-to-end risk tests run the real ones (tests/e2e/test_risk.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from test_pipeline_card_security import TOPOLOGY, Connectors, Protector, ctx, request

from payswitch.v1 import common_pb2
from payswitch.world.topology import RiskConfig, load
from switch.core import metrics
from switch.core.idempotency import IdempotencyGuard
from switch.core.registry import TerminalRegistry
from switch.core.sequences import BlockSequence
from switch.domain.transactions import TxState
from switch.pipeline import Pipeline
from switch.risk.engine import RiskEngine
from switch.risk.rules import load as load_rules
from switch.risk.rules import parse
from switch.routing.router import Router
from switch.services import Services
from switch.store.base import Store
from switch.store.sqlite.store import SqliteStore

RULES = Path(__file__).resolve().parents[2] / "topology" / "risk" / "rules-v1.toml"
CFG = RiskConfig(
    enabled=True,
    rules=str(RULES),
    slice_ms=50,
    fallback_floor=(("EUR", 2500),),
    small=(("EUR", 200),),
)
DECLINE_ALL = {
    "version": "decline-all",
    "thresholds": {"decline": 1},
    "rules": [{"id": "everything", "when": "true", "score": 1, "message": "no"}],
}


class Reverser:
    async def queue(self, _tx_id):
        return True

    def schedule_unrecorded(self, _tx):
        pass


class SlowStore(SqliteStore):
    """The risk observation never answers (``stall``) or fails (``fail``); the rest of the
    store is the real one. SQLite observes inside the intent's transaction, where it cannot be
    slow on its own: a stalled observation is the intent made step by step (``Store``'s
    default, Cassandra's shape: the observation a call of its own, bounded by the slice); a
    failing one is the risk tables failing inside that transaction."""

    stall = False
    fail = False

    async def receive_with_intent(self, tx, **kw):
        if self.stall:
            return await Store.receive_with_intent(self, tx, **kw)
        return await super().receive_with_intent(tx, **kw)

    async def risk_observe(self, obs, now):
        if self.stall:
            await asyncio.Event().wait()  # never set: only the stage's slice ends it
        return await super().risk_observe(obs, now)

    def _observe_in(self, c, obs, now):
        if self.fail:
            raise sqlite3.OperationalError("scripted: the risk tables fail")
        return super()._observe_in(c, obs, now)


@pytest.fixture
async def world(tmp_path):
    metrics.reset()
    topology = load(TOPOLOGY)
    store = SlowStore(tmp_path / "switch.db", synchronous="normal")
    await store.open()
    engines: list[RiskEngine] = []

    def make(engine: RiskEngine | None = None):
        engine = engine or RiskEngine(
            CFG, store, load_rules(RULES), countries=topology.terminal_countries()
        )
        engines.append(engine)
        connectors = Connectors()
        svc = Services(
            config=topology.switch,
            store=store,
            guard=IdempotencyGuard(store),
            protector=Protector(),
            registry=TerminalRegistry(topology),
            router=Router(topology),
            connectors=connectors,
            reverser=Reverser(),
            rrns=BlockSequence(store, "rrn"),
            risk=engine,
        )
        return Pipeline(svc), connectors.one, engine

    yield make, store
    for e in engines:
        await e.close()
    await store.close()


_n = iter(range(1, 10_000))


async def pay(pipeline, minor=1250, pin=True):
    n = next(_n)
    req = request(f"k-{n}", stan=n, amount_minor=minor)
    req.encrypted_card.ksn = bytes.fromhex("0000000112345678") + n.to_bytes(4, "big")
    if not pin:
        req.pin_block = b""
    return await pipeline.run(ctx(req))


def sample(name, **labels):
    return metrics.get().registry.get_sample_value(name, labels) or 0


async def test_card_testing_is_declined_59_recorded_and_never_sent(world):
    make, store = world
    pipeline, connector, _ = make()
    answers = [await pay(pipeline, minor=100) for _ in range(3)]
    assert [a.response_code for a in answers[:2]] == [common_pb2.RESPONSE_CODE_APPROVED] * 2
    last = answers[2]
    assert last.response_code == common_pb2.RESPONSE_CODE_SUSPECTED_FRAUD
    assert (last.risk_reason, last.pin_required) == ("card_testing", False)
    assert last.message == "suspected card testing"
    assert len(connector.sent) == 2  # the third never left the switch
    tx = await store.get_transaction(last.transaction_id)
    assert (tx.state, tx.response_code) == (TxState.DECLINED, "59")
    record = await store.get_risk_decision(tx.id)
    assert (record.action, record.code, record.rules_version) == ("decline", "59", "rules-v1")
    assert record.reasons[0] == "card_testing" and record.score >= 80
    first = await store.get_risk_decision(answers[0].transaction_id)
    assert (first.action, first.code, first.reasons) == ("approve", "", ())
    assert sample("payswitch_risk_rule_hits_total", ruleset="live", rule="card_testing") == 1
    assert sample("payswitch_risk_decisions_total", ruleset="live", action="approve") == 2
    assert answers[0].risk_reason == ""


async def test_velocity_without_a_pin_asks_for_it_and_with_it_goes_through(world):
    make, store = world
    pipeline, _, _ = make()
    for _ in range(5):
        assert (await pay(pipeline, pin=False)).response_code == common_pb2.RESPONSE_CODE_APPROVED
    stepped = await pay(pipeline, pin=False)
    assert stepped.response_code == common_pb2.RESPONSE_CODE_EXCEEDS_FREQUENCY_LIMIT
    assert stepped.pin_required and stepped.risk_reason == "card_velocity"
    with_pin = await pay(pipeline, pin=True)
    assert with_pin.response_code == common_pb2.RESPONSE_CODE_APPROVED
    assert not with_pin.pin_required
    record = await store.get_risk_decision(with_pin.transaction_id)
    assert (record.action, record.code) == ("step_up", "")


async def test_the_fallback_decides_when_the_store_is_slow(world):
    make, store = world
    pipeline, connector, engine = make()
    store.stall = True
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    small = await pay(pipeline, minor=2500)  # at the floor: approved
    big = await pay(pipeline, minor=2501)
    elapsed = loop.time() - t0
    assert small.response_code == common_pb2.RESPONSE_CODE_APPROVED
    assert big.response_code == common_pb2.RESPONSE_CODE_DO_NOT_HONOUR
    assert big.message == "risk check unavailable" and big.risk_reason == "fallback_timeout"
    assert elapsed < 1.0  # two slices of 50 ms, not the 2 s budget
    assert len(connector.sent) == 1
    assert sample("payswitch_risk_fallback_total", reason="timeout", outcome="approve") == 1
    assert sample("payswitch_risk_fallback_total", reason="timeout", outcome="decline") == 1
    await engine.drain()  # the fallback's record is written in the background
    record = await store.get_risk_decision(big.transaction_id)
    assert (record.action, record.code) == ("fallback_decline", "05")


async def test_the_fallback_decides_when_the_store_fails(world):
    make, store = world
    pipeline, _, _ = make()
    store.fail = True
    big = await pay(pipeline, minor=9999)
    assert big.response_code == common_pb2.RESPONSE_CODE_DO_NOT_HONOUR
    assert sample("payswitch_risk_fallback_total", reason="store", outcome="decline") == 1
    # The intent stood (only the observation's savepoint rolled back): recorded, declined.
    tx = await store.get_transaction(big.transaction_id)
    assert (tx.state, tx.response_code) == (TxState.DECLINED, "05")


async def test_a_shadow_set_counts_and_is_kept_but_never_acts(world):
    make, store = world
    engine = RiskEngine(CFG, store, load_rules(RULES), shadow=parse(DECLINE_ALL))
    pipeline, connector, _ = make(engine)
    answer = await pay(pipeline)
    assert answer.response_code == common_pb2.RESPONSE_CODE_APPROVED
    assert len(connector.sent) == 1
    record = await store.get_risk_decision(answer.transaction_id)
    assert (record.action, record.shadow_version, record.shadow_action) == (
        "approve",
        "decline-all",
        "decline",
    )
    assert sample("payswitch_risk_decisions_total", ruleset="shadow", action="decline") == 1
    assert sample("payswitch_risk_rule_hits_total", ruleset="shadow", rule="everything") == 1


async def test_a_changed_rule_file_is_swapped_in_and_a_bad_one_refused(world, tmp_path):
    make, store = world
    path = tmp_path / "rules.toml"
    path.write_text(RULES.read_text())
    cfg = RiskConfig(enabled=True, rules=str(path), slice_ms=50)
    engine = await RiskEngine.open(cfg, store, {}, None)
    pipeline, _, _ = make(engine)
    assert await engine.reload_changed() == []  # nothing changed yet
    assert (await pay(pipeline)).response_code == common_pb2.RESPONSE_CODE_APPROVED
    path.write_text(
        'version = "decline-all"\n[thresholds]\ndecline = 1\n'
        '[[rules]]\nid = "everything"\nwhen = "true"\nscore = 1\n'
    )
    assert await engine.reload_changed() == ["live"]
    declined = await pay(pipeline)
    assert declined.response_code == common_pb2.RESPONSE_CODE_SUSPECTED_FRAUD
    assert (await store.get_risk_decision(declined.transaction_id)).rules_version == "decline-all"
    path.write_text('version = "broken"\n[[rules]]\nid = "x"\nwhen = "nosuch"\nscore = 1\n')
    assert await engine.reload_changed() == []
    assert engine.live.version == "decline-all"  # the last good set stays
    assert sample("payswitch_risk_reloads_total", ruleset="live", outcome="refused") == 1


REVIEW_ALL = {
    "version": "review-all",
    "thresholds": {"review": 1},
    "rules": [{"id": "look", "when": "true", "score": 1}],
}


async def test_a_review_is_queued_and_an_operators_verdict_lists_the_card(world):
    import grpc

    from payswitch.v1 import admin_pb2 as pb
    from payswitch.v1 import admin_pb2_grpc
    from switch.api.admin import AdminService

    make, store = world
    engine = RiskEngine(CFG, store, parse(REVIEW_ALL))
    pipeline, connector, _ = make(engine)
    first = await pay(pipeline)
    assert first.response_code == common_pb2.RESPONSE_CODE_APPROVED  # let through
    assert first.risk_reason == ""  # nothing to show: it was not refused
    registry = TerminalRegistry(load(TOPOLOGY), store)
    await registry.refresh()
    server = grpc.aio.server()
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminService(registry, risk=store), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = admin_pb2_grpc.AdminServiceStub(channel)
    try:
        listed = await stub.ListRiskReviews(pb.ListRiskReviewsRequest(), timeout=5)
        assert [(r.transaction_id, r.reasons) for r in listed.reviews] == [
            (first.transaction_id, ["look"])
        ]
        assert listed.reviews[0].card_token == "t" * 64
        bad = pb.ResolveRiskReviewRequest(transaction_id=first.transaction_id)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ResolveRiskReview(bad, timeout=5)
        assert (
            err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            and "verdict" in err.value.details()
        )
        fraud = pb.ResolveRiskReviewRequest(
            transaction_id=first.transaction_id, verdict=pb.RISK_VERDICT_FRAUD
        )
        done = await stub.ResolveRiskReview(fraud, timeout=5)
        assert done.list == "block"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ResolveRiskReview(fraud, timeout=5)  # one verdict counts
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await channel.close()
        await server.stop(0)
    await engine.refresh_lists()  # what the watcher does every reload_s
    blocked = await pay(pipeline)
    assert blocked.response_code == common_pb2.RESPONSE_CODE_SUSPECTED_FRAUD
    assert blocked.risk_reason == "block_list"
    assert len(connector.sent) == 1
