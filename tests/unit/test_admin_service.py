"""AdminService over real gRPC in-process (plaintext; mTLS is in tests/e2e/test_tls_terminals):
optional features answer FAILED_PRECONDITION when absent, SAF and circuit objects are mapped,
their errors become statuses, and the registry RPCs persist revocations."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest

from payswitch.v1 import admin_pb2 as pb
from payswitch.v1 import admin_pb2_grpc
from payswitch.world.topology import load
from switch.api.admin import AdminService
from switch.core.registry import TerminalRegistry
from switch.store.sqlite.store import SqliteStore

TOPOLOGY = load("topology/default.toml")


@dataclass
class Item:
    id: str
    kind: str
    transaction_id: str
    attempts: int
    created_at: float
    next_attempt_at: float
    last_error: str
    dead: bool


class FakeSaf:
    def __init__(self) -> None:
        self.items = {"d1": Item("d1", "reversal", "tx1", 9, 10.0, 20.0, "timeout", True)}
        self.asked: list[tuple[bool, int]] = []

    async def list_items(self, dead: bool, limit: int = 100):
        self.asked.append((dead, limit))
        return [i for i in self.items.values() if i.dead == dead][:limit]

    async def replay(self, item_id: str):
        item = self.items[item_id]  # KeyError: unknown
        if not item.dead:
            raise ValueError("not dead")
        item.dead, item.attempts = False, 0
        return item


@dataclass
class Snap:
    acquirer_id: str
    state: str
    consecutive_failures: int
    error_rate: float
    opened_at: float


class FakeBreakers:
    def snapshots(self):
        return [Snap("acq-alpha", "open", 5, 0.5, 1000.0), Snap("acq-beta", "closed", 0, 0.0, 0)]


async def _serve(service: AdminService):
    server = grpc.aio.server()
    admin_pb2_grpc.add_AdminServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return server, channel, admin_pb2_grpc.AdminServiceStub(channel)


@pytest.fixture
async def store(tmp_path):
    s = SqliteStore(tmp_path / "s.db")
    await s.open()
    yield s
    await s.close()


async def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


async def test_absent_features_answer_failed_precondition(store):
    registry = TerminalRegistry(TOPOLOGY, store)
    await registry.refresh()
    server, channel, stub = await _serve(AdminService(registry))
    try:
        for call in (
            stub.ListSafItems(pb.ListSafItemsRequest(), timeout=5),
            stub.ReplayDeadLetter(pb.ReplayDeadLetterRequest(item_id="x"), timeout=5),
            stub.ListCircuits(pb.ListCircuitsRequest(), timeout=5),
        ):
            assert await _code(call) == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        await channel.close()
        await server.stop(0)


async def test_saf_and_circuits_are_listed_and_replayed(store):
    registry = TerminalRegistry(TOPOLOGY, store)
    await registry.refresh()
    saf = FakeSaf()
    server, channel, stub = await _serve(AdminService(registry, saf, FakeBreakers()))
    try:
        dead = await stub.ListSafItems(pb.ListSafItemsRequest(dead_letters=True), timeout=5)
        assert [(i.id, i.kind, i.dead, i.created_at_ms) for i in dead.items] == [
            ("d1", "reversal", True, 10_000)
        ]
        assert saf.asked == [(True, 100)]  # 0 means the default limit
        bad = pb.ListSafItemsRequest(limit=5000)
        assert await _code(stub.ListSafItems(bad, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT
        back = await stub.ReplayDeadLetter(pb.ReplayDeadLetterRequest(item_id="d1"), timeout=5)
        assert not back.item.dead and back.item.attempts == 0
        again = stub.ReplayDeadLetter(pb.ReplayDeadLetterRequest(item_id="d1"), timeout=5)
        assert await _code(again) == grpc.StatusCode.FAILED_PRECONDITION  # no longer dead
        unknown = stub.ReplayDeadLetter(pb.ReplayDeadLetterRequest(item_id="nope"), timeout=5)
        assert await _code(unknown) == grpc.StatusCode.NOT_FOUND
        circuits = await stub.ListCircuits(pb.ListCircuitsRequest(), timeout=5)
        assert [(c.acquirer_id, c.state, c.opened_at_ms) for c in circuits.circuits] == [
            ("acq-alpha", "open", 1_000_000),
            ("acq-beta", "closed", 0),
        ]
    finally:
        await channel.close()
        await server.stop(0)


async def test_revoke_and_reinstate_persist_in_the_store(store):
    registry = TerminalRegistry(TOPOLOGY, store)
    await registry.refresh()
    server, channel, stub = await _serve(AdminService(registry))
    try:
        got = await stub.RevokeTerminal(
            pb.RevokeTerminalRequest(terminal_id="T-0002", reason="lost"), timeout=5
        )
        assert got.terminal.revoked and got.terminal.merchant_id == "M-GROCER"
        assert [r.terminal_id for r in await store.revoked_terminals()] == ["T-0002"]
        long = pb.RevokeTerminalRequest(terminal_id="T-0001", reason="x" * 201)
        assert await _code(stub.RevokeTerminal(long, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT
        assert [r.terminal_id for r in await store.revoked_terminals()] == ["T-0002"]
        back = await stub.ReinstateTerminal(
            pb.ReinstateTerminalRequest(terminal_id="T-0002"), timeout=5
        )
        assert back.was_revoked and not back.terminal.revoked
        assert await store.revoked_terminals() == []
        listed = await stub.ListTerminals(pb.ListTerminalsRequest(), timeout=5)
        assert [t.terminal_id for t in listed.terminals] == ["T-0001", "T-0002", "T-0003"]
    finally:
        await channel.close()
        await server.stop(0)


async def test_with_tls_a_peer_without_an_admin_identity_is_refused(store):
    """Defence in depth behind the admin CA: the certificate must carry an admin URI. Over a
    plaintext channel there is no certificate at all, so the check refuses."""
    registry = TerminalRegistry(TOPOLOGY, store)
    await registry.refresh()
    server, channel, stub = await _serve(AdminService(registry, tls_on=True))
    try:
        call = stub.ListTerminals(pb.ListTerminalsRequest(), timeout=5)
        assert await _code(call) == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await channel.close()
        await server.stop(0)


async def test_risk_reviews_refuse_what_they_should(store):
    registry = TerminalRegistry(TOPOLOGY, store)
    await registry.refresh()
    off, channel_off, stub_off = await _serve(AdminService(registry))
    on, channel, stub = await _serve(AdminService(registry, risk=store))
    try:
        for call in (
            stub_off.ListRiskReviews(pb.ListRiskReviewsRequest(), timeout=5),
            stub_off.ResolveRiskReview(pb.ResolveRiskReviewRequest(), timeout=5),
        ):
            assert await _code(call) == grpc.StatusCode.FAILED_PRECONDITION  # risk is off
        too_many = stub.ListRiskReviews(pb.ListRiskReviewsRequest(limit=5000), timeout=5)
        assert await _code(too_many) == grpc.StatusCode.INVALID_ARGUMENT
        for tx in ("", "x' OR 1=1 --", "a" * 200):
            bad = pb.ResolveRiskReviewRequest(transaction_id=tx, verdict=pb.RISK_VERDICT_FRAUD)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ResolveRiskReview(bad, timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "transaction_id" in err.value.details()
        unknown = pb.ResolveRiskReviewRequest(
            transaction_id="ab" * 16, verdict=pb.RISK_VERDICT_FALSE_POSITIVE
        )
        assert await _code(stub.ResolveRiskReview(unknown, timeout=5)) == grpc.StatusCode.NOT_FOUND
        assert await store.risk_listed() == []  # nothing listed by any refused call
    finally:
        for ch in (channel, channel_off):
            await ch.close()
        for server in (on, off):
            await server.stop(0)
