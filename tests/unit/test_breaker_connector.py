"""The acquirer connector with its breaker, over real gRPC on 127.0.0.1: nothing listening is
``Refused`` (never sent) and counts as a failure; a slow acquirer is cut at its own
``timeout_ms`` as an unknown outcome; an open circuit refuses without connecting; every call
is timed with its outcome; the topology keys are validated."""

from __future__ import annotations

import asyncio
import socket
import time

import grpc
import pytest

from payswitch.v1 import common_pb2, network_pb2, network_pb2_grpc
from payswitch.world.topology import BreakerConfig, TopologyError, parse
from switch.core import metrics
from switch.routing.breakers import OPEN, CircuitBreaker
from switch.routing.connectors import AcquirerConnector, OutcomeUnknown, Refused

CFG = BreakerConfig(failure_threshold=2, open_s=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hops(acquirer: str, outcome: str) -> float:
    return metrics.get().hop_seconds.labels(acquirer, "authorize", outcome)._sum.get() or 0.0


def hop_count(acquirer: str, outcome: str) -> int:
    m = metrics.get().hop_seconds
    samples = m.collect()[0].samples
    for s in samples:
        if s.name.endswith("_count") and s.labels == {
            "acquirer": acquirer,
            "rpc": "authorize",
            "outcome": outcome,
        }:
            return int(s.value)
    return 0


class Acquirer(network_pb2_grpc.AcquirerServiceServicer):
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls = 0

    async def Authorize(self, request, context):
        self.calls += 1
        await asyncio.sleep(self.delay)
        return network_pb2.NetworkAuthorizationResult(
            rrn=request.rrn, response_code=common_pb2.RESPONSE_CODE_APPROVED
        )


@pytest.fixture
async def server():
    servers = []

    async def start(delay: float) -> tuple[str, Acquirer]:
        srv = grpc.aio.server()
        servicer = Acquirer(delay)
        network_pb2_grpc.add_AcquirerServiceServicer_to_server(servicer, srv)
        port = srv.add_insecure_port("127.0.0.1:0")
        await srv.start()
        servers.append(srv)
        return f"127.0.0.1:{port}", servicer

    yield start
    for srv in servers:
        await srv.stop(0)


@pytest.fixture(autouse=True)
def fresh_metrics():
    metrics.reset()


async def test_nothing_listening_is_refused_and_opens_the_circuit():
    breaker = CircuitBreaker("acq", CFG)
    conn = AcquirerConnector("acq", f"127.0.0.1:{free_port()}", breaker=breaker)
    try:
        for _ in range(2):
            with pytest.raises(Refused, match="no connection"):
                await conn.authorize(network_pb2.NetworkAuthorization(rrn="1"), 1.0)
        assert breaker.state == OPEN
        started = time.monotonic()
        with pytest.raises(Refused, match="circuit open"):
            await conn.authorize(network_pb2.NetworkAuthorization(rrn="1"), 1.0)
        assert time.monotonic() - started < 0.05
        assert hop_count("acq", "refused") == 3
    finally:
        await conn.close()


async def test_prepare_runs_only_once_connected_and_its_message_is_sent(server):
    prepared: list[str] = []

    async def prepare():
        prepared.append("x")
        return network_pb2.NetworkAuthorization(rrn="prepared")

    down = AcquirerConnector("acq", f"127.0.0.1:{free_port()}")
    try:
        with pytest.raises(Refused):
            await down.authorize(network_pb2.NetworkAuthorization(rrn="1"), 1.0, prepare)
        assert prepared == []
    finally:
        await down.close()
    target, _ = await server(0.0)
    up = AcquirerConnector("acq", target)
    try:
        result = await up.authorize(network_pb2.NetworkAuthorization(rrn="1"), 1.0, prepare)
        assert prepared == ["x"] and result.rrn == "prepared"
    finally:
        await up.close()


async def test_answer_is_a_success_and_timed(server):
    target, acquirer = await server(0.0)
    breaker = CircuitBreaker("acq", CFG)
    conn = AcquirerConnector("acq", target, breaker=breaker)
    try:
        result = await conn.authorize(network_pb2.NetworkAuthorization(rrn="7"), 1.0)
        assert result.rrn == "7" and acquirer.calls == 1
        assert hop_count("acq", "answered") == 1 and hops("acq", "answered") > 0
        assert breaker.snapshot().consecutive_failures == 0
    finally:
        await conn.close()


async def test_slow_acquirer_is_cut_at_its_own_timeout_as_unknown_not_refused(server):
    target, acquirer = await server(1.0)
    breaker = CircuitBreaker("acq", CFG)
    conn = AcquirerConnector("acq", target, timeout_s=0.2, breaker=breaker)
    try:
        started = time.monotonic()
        with pytest.raises(OutcomeUnknown) as info:
            await conn.authorize(network_pb2.NetworkAuthorization(rrn="8"), 1.5)
        assert not isinstance(info.value, Refused)  # it was sent: reverse, never fail over
        assert info.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
        assert 0.15 < time.monotonic() - started < 0.8  # 0.2 s, not the 1.5 s budget
        assert acquirer.calls == 1 and hop_count("acq", "unknown") == 1
        assert breaker.snapshot().consecutive_failures == 1
    finally:
        await conn.close()


def _doc(**sections):
    doc = {
        "acquirers": [{"id": "a", "listen": "127.0.0.1:1", "schemes": ["visa"]}],
        "schemes": [{"id": "s", "listen": "127.0.0.1:2", "brands": ["visa"]}],
        "merchants": [{"id": "m", "acquirers": ["a"]}],
    }
    doc.update(sections)
    return doc


def test_topology_defaults_and_overrides():
    topo = parse(_doc())
    assert topo.breaker == BreakerConfig() and not topo.standin.enabled
    assert topo.acquirers[0].timeout_ms == 2000
    topo = parse(_doc(breaker={"failure_threshold": 3}, standin={"enabled": True}))
    assert topo.breaker.failure_threshold == 3 and topo.standin.enabled


@pytest.mark.parametrize(
    "sections",
    [
        {"breaker": {"failure_threshold": 0}},
        {"breaker": {"error_rate": 1.5}},
        {"breaker": {"open_s": -1}},
        {"breaker": {"surprise": 1}},
        {"standin": {"enabled": "yes"}},
        {"standin": {"floor": {"XXX": 100}}},
        {"standin": {"floor": {"EUR": 1.5}}},
        {"standin": {"blocked_mccs": ["59"]}},
        {"standin": {"negative_tokens": ["not-a-token"]}},
        {"standin": {"negative_bins": ["12-1"]}},
        {"standin": {"window_s": 0}},
        {"acquirers": [{"id": "a", "listen": "127.0.0.1:1", "schemes": [], "timeout_ms": 0}]},
    ],
)
def test_topology_rejects_bad_keys(sections):
    with pytest.raises(TopologyError):
        parse(_doc(**sections))
