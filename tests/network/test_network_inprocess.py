"""Nodes served in the test's own event loop: faults that need no onward hop, health, reflection.
Every node serves mTLS with its own certificate (``payswitch-certs`` in a temporary folder), and
the test dials it as the party that calls it (the switch) or as the network operator."""

from __future__ import annotations

import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from acquirer import node as acquirer
from network.server import NodeServer, bind_address
from network.transport import NodeTls
from payswitch import tls
from payswitch.certs import make_certs
from payswitch.v1 import common_pb2, network_pb2, network_pb2_grpc
from payswitch.world.ports import with_free_ports
from payswitch.world.topology import TopologyError, network_identities, parse
from stack.local import start_network


def _topology(**acq_extra):
    doc = {
        "acquirers": [{"id": "acq-x", "listen": "x", "schemes": ["visa"], **acq_extra}],
        "schemes": [{"id": "net-x", "listen": "x", "brands": ["visa", "amex"]}],
        "issuers": [{"id": "bank-x", "listen": "x", "bins": ["400000-499999"]}],
    }
    return parse(with_free_ports(doc))


def _auth(rrn: str, scheme: int = common_pb2.CARD_SCHEME_VISA) -> network_pb2.NetworkAuthorization:
    return network_pb2.NetworkAuthorization(
        rrn=rrn,
        pan="4111111111111111",
        expiry="2812",
        scheme=scheme,
        amount=common_pb2.Money(minor_units=100, currency="EUR"),
    )


_WHOLE = {
    "acquirers": [{"id": "acq-l", "listen": "x", "schemes": ["visa"]}],
    "schemes": [{"id": "net-l", "listen": "x", "brands": ["visa"]}],
    "issuers": [
        {
            "id": "bank-l",
            "listen": "x",
            "bins": ["400000-499999"],
            "accounts": [{"id": "L-1", "currency": "EUR", "balance": 10_000}],
            "cards": [{"pan": "4111111111111111", "expiry": "9912", "account": "L-1"}],
        }
    ],
}


_CERTS: dict[str, object] = {}


@pytest.fixture(scope="module", autouse=True)
def _keys(ceremony, tmp_path_factory) -> None:
    """The acquirers and issuers below open their HSM at start: make their keys first; and
    every process's certificate."""
    ceremony(_topology())
    ceremony(parse(with_free_ports(_WHOLE)))
    root = tmp_path_factory.mktemp("inproc") / "certs"
    nodes = network_identities(_topology()) + network_identities(parse(with_free_ports(_WHOLE)))
    make_certs(root, [], nodes=dict.fromkeys(nodes))
    _CERTS["root"] = root


def _certs():
    return _CERTS["root"]


def _dial(target: str, creds: grpc.ChannelCredentials) -> grpc.aio.Channel:
    return grpc.aio.secure_channel(target, creds)


class _Served:
    def __init__(self, server: NodeServer) -> None:
        self.server = server
        as_switch = tls.node_credentials(_certs(), "switch", "switch-1")
        self.channel = _dial(f"127.0.0.1:{server.port}", as_switch)
        self.acquirer = network_pb2_grpc.AcquirerServiceStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()
        await self.server.stop(grace=0)


async def _serve(**acq_extra) -> _Served:
    topo = _topology(**acq_extra)
    security = NodeTls.of_node(True, _certs(), "acq-x")
    app = await acquirer.create(topo, "acq-x", seed=3, client=security.client)
    server = NodeServer(app, security)
    await server.start()
    return _Served(server)


async def test_error_fault_answers_unavailable_without_forwarding() -> None:
    served = await _serve(error_rate=1.0)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await served.acquirer.Authorize(_auth("e1"), timeout=2)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "4111" not in (err.value.details() or "")
    finally:
        await served.close()


async def test_timeout_fault_never_answers_until_the_callers_deadline() -> None:
    served = await _serve(timeout_rate=1.0)
    try:
        start = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await served.acquirer.Authorize(_auth("t1"), timeout=0.3)
        elapsed = time.monotonic() - start
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert 0.25 < elapsed < 0.6
    finally:
        await served.close()


async def test_brand_not_served_is_invalid_transaction() -> None:
    served = await _serve()
    try:
        for scheme in (common_pb2.CARD_SCHEME_AMEX, common_pb2.CARD_SCHEME_UNSPECIFIED):
            result = await served.acquirer.Authorize(_auth("b1", scheme), timeout=2)
            assert result.response_code == common_pb2.RESPONSE_CODE_INVALID_TRANSACTION
            assert result.responder == "acq-x" and result.rrn == "b1"
    finally:
        await served.close()


async def test_next_hop_down_is_passed_back_as_an_error_not_a_decline() -> None:
    served = await _serve()  # nothing listens on the scheme's port
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await served.acquirer.Authorize(_auth("d1"), timeout=2)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await served.close()


async def test_health_and_reflection() -> None:
    served = await _serve()
    try:
        health = health_pb2_grpc.HealthStub(served.channel)
        for service in ("", "payswitch.v1.AcquirerService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(served.channel)
        call = refl.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=2
        )
        names = set()
        async for reply in call:
            names |= {s.name for s in reply.list_services_response.service}
        assert {"payswitch.v1.AcquirerService", "grpc.health.v1.Health"} <= names
    finally:
        await served.close()


def test_nodes_listen_on_loopback_only() -> None:
    assert bind_address("localhost:5000") == "127.0.0.1:5000"
    assert bind_address("127.0.0.1:5000") == "127.0.0.1:5000"
    for bad in ("0.0.0.0:5000", "10.0.0.1:5000", "5000", "127.0.0.1:x"):
        with pytest.raises(TopologyError):
            bind_address(bad)


async def test_whole_network_in_one_event_loop(tmp_path) -> None:
    topo = parse(with_free_ports(_WHOLE))
    net = await start_network(topo, tmp_path / "books", seed=1, certs_dir=_certs())
    try:
        as_switch = tls.node_credentials(_certs(), "switch", "switch-1")
        async with _dial(topo.acquirer("acq-l").listen, as_switch) as ch:
            result = await network_pb2_grpc.AcquirerServiceStub(ch).Authorize(
                _auth("l1"), timeout=2
            )
        assert (result.response_code, result.responder) == (
            common_pb2.RESPONSE_CODE_APPROVED,
            "bank-l",
        )
        async with _dial(topo.issuer("bank-l").listen, tls.operator_credentials(_certs())) as ch:
            acct = await network_pb2_grpc.IssuerServiceStub(ch).GetAccount(
                network_pb2.GetAccountRequest(account_id="L-1"), timeout=2
            )
        assert (acct.held, acct.available) == (100, 9_900)
    finally:
        await net.stop()


async def test_a_caller_reaches_only_the_node_it_meant() -> None:
    """The onward channels check the server's certificate against the node they dial: another
    node's (valid) certificate on that port fails the handshake."""
    served = await _serve()
    as_switch = tls.node_credentials(_certs(), "switch", "switch-1")
    target = f"127.0.0.1:{served.server.port}"
    try:
        async with tls.aio_channel(target, as_switch, server=("scheme", "net-x")) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await network_pb2_grpc.AcquirerServiceStub(ch).Authorize(_auth("p1"), timeout=2)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        async with tls.aio_channel(target, as_switch, server=("acquirer", "acq-x")) as ch:
            result = await network_pb2_grpc.AcquirerServiceStub(ch).Authorize(
                _auth("p2", scheme=common_pb2.CARD_SCHEME_AMEX), timeout=2
            )
            assert result.response_code == common_pb2.RESPONSE_CODE_INVALID_TRANSACTION
    finally:
        await served.close()
