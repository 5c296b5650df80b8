"""NodeControlService on real node processes: runtime latency, failures before acting and
answers dropped after acting, per operation, cleared again; and the seeded draws."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from network.faults import DropMode, FaultControl, RuntimeFaults
from payswitch.v1 import common_pb2 as c
from payswitch.v1 import control_pb2 as ctl
from payswitch.v1 import control_pb2_grpc as ctl_grpc
from payswitch.v1 import network_pb2 as n
from payswitch.v1 import network_pb2_grpc as g
from payswitch.world.ports import with_free_ports, write_topology
from stack.launcher import Stack

from .harness import ceremony

pytestmark = pytest.mark.e2e

PAN = "4111111111111111"
TOPOLOGY = {
    "acquirers": [{"id": "acq-x", "listen": "x", "schemes": ["visa"]}],
    "schemes": [{"id": "net-x", "listen": "x", "brands": ["visa"]}],
    "issuers": [
        {
            "id": "bank-x",
            "listen": "x",
            "bins": ["400000-499999"],
            "accounts": [{"id": "X-1", "currency": "EUR", "balance": 10_000_000}],
            "cards": [{"pan": PAN, "expiry": "3012", "account": "X-1"}],
        }
    ],
}


def _channel(stack: Stack, node: str, creds: grpc.ChannelCredentials | None) -> grpc.aio.Channel:
    address = stack.address(node)
    if creds is None:
        return grpc.aio.insecure_channel(address)
    return grpc.aio.secure_channel(address, creds)


class Net:
    def __init__(self, stack: Stack) -> None:
        # The network operator (fault control, the issuer's books) ...
        self.channels = {
            i: _channel(stack, i, stack.operator_credentials()) for i in stack.node_ids
        }
        # ... and the switch's identity for payments into the acquirer.
        self.as_switch = _channel(stack, "acq-x", stack.node_credentials(stack.topology.switch.id))
        self.acquirer = g.AcquirerServiceStub(self.as_switch)
        self.issuer = g.IssuerServiceStub(self.channels["bank-x"])

    def control(self, node: str) -> ctl_grpc.NodeControlServiceStub:
        return ctl_grpc.NodeControlServiceStub(self.channels[node])

    async def set(self, node: str, **spec) -> None:
        await self.control(node).SetFaults(
            ctl.SetFaultsRequest(faults=ctl.FaultSpec(**spec)), timeout=2
        )

    async def hold(self, rrn: str) -> n.GetHoldResponse | None:
        try:
            return await self.issuer.GetHold(n.GetHoldRequest(rrn=rrn), timeout=2)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
            return None


@pytest.fixture(scope="module")
async def net(tmp_path_factory) -> AsyncIterator[Net]:
    run_dir = tmp_path_factory.mktemp("control")
    write_topology(with_free_ports(TOPOLOGY), run_dir / "topology.toml")
    await asyncio.to_thread(ceremony, run_dir / "topology.toml")
    stack = Stack(run_dir / "topology.toml", run_dir, switch=False, ready_timeout=30)
    await asyncio.to_thread(stack.start)
    clients = Net(stack)
    yield clients
    for ch in clients.channels.values():
        await ch.close()
    await asyncio.to_thread(stack.stop)


@pytest.fixture(autouse=True)
async def cleared(net: Net) -> AsyncIterator[None]:
    yield
    for node in net.channels:
        await net.control(node).ClearFaults(ctl.ClearFaultsRequest(), timeout=2)


def auth(rrn: str, amount: int = 500) -> n.NetworkAuthorization:
    return n.NetworkAuthorization(
        rrn=rrn,
        stan=7,
        acquirer_id="acq-x",
        amount=c.Money(minor_units=amount, currency="EUR"),
        scheme=c.CARD_SCHEME_VISA,
        entry_mode=c.ENTRY_MODE_CHIP,
        pan=PAN,
        expiry="3012",
    )


def reversal(rrn: str) -> n.NetworkReversal:
    return n.NetworkReversal(original_rrn=rrn, bin=PAN[:8], scheme=c.CARD_SCHEME_VISA)


def new_rrn() -> str:
    return uuid.uuid4().hex[:12]


async def test_fail_with_an_iso_code_answers_it_and_forwards_nothing(net: Net) -> None:
    await net.set(
        "acq-x", fail=ctl.FailFault(rate=1.0, response_code=c.RESPONSE_CODE_SYSTEM_MALFUNCTION)
    )
    rrn = new_rrn()
    result = await net.acquirer.Authorize(auth(rrn), timeout=2)
    assert result.response_code == c.RESPONSE_CODE_SYSTEM_MALFUNCTION
    assert result.responder == "acq-x"
    assert await net.hold(rrn) is None


async def test_fail_with_a_grpc_status_aborts_before_acting(net: Net) -> None:
    await net.set("bank-x", fail=ctl.FailFault(rate=1.0, grpc_status=8))  # RESOURCE_EXHAUSTED
    rrn = new_rrn()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await net.acquirer.Authorize(auth(rrn), timeout=2)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await net.hold(rrn) is None


async def test_dropped_answer_after_acting_leaves_the_hold(net: Net) -> None:
    await net.set("acq-x", drop=ctl.DropFault(rate=1.0, mode=ctl.DROP_MODE_ABORT))
    rrn = new_rrn()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await net.acquirer.Authorize(auth(rrn), timeout=2)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    hold = await net.hold(rrn)
    assert hold is not None and hold.state == n.HOLD_STATE_HELD


async def test_held_answer_runs_into_the_deadline_and_operations_filter(net: Net) -> None:
    await net.set(
        "bank-x", drop=ctl.DropFault(rate=1.0, mode=ctl.DROP_MODE_HOLD), operations=["authorize"]
    )
    rrn = new_rrn()
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await net.acquirer.Authorize(auth(rrn), timeout=0.5)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 1.5
    assert (await net.hold(rrn)).state == n.HOLD_STATE_HELD
    # Reversals are not in the fault's operations: answered, and the hold is released.
    ack = await net.acquirer.Reverse(reversal(rrn), timeout=2)
    assert ack.response_code == c.RESPONSE_CODE_APPROVED
    assert (await net.hold(rrn)).state == n.HOLD_STATE_RELEASED


async def test_latency_then_cleared(net: Net) -> None:
    latency = ctl.LatencyFault(distribution=ctl.LATENCY_DISTRIBUTION_FIXED, ms=400)
    await net.set("net-x", latency=latency)
    started = time.monotonic()
    result = await net.acquirer.Authorize(auth(new_rrn()), timeout=2)
    assert result.response_code == c.RESPONSE_CODE_APPROVED
    assert time.monotonic() - started >= 0.4
    await net.control("net-x").ClearFaults(ctl.ClearFaultsRequest(), timeout=2)
    started = time.monotonic()
    result = await net.acquirer.Authorize(auth(new_rrn()), timeout=2)
    assert result.response_code == c.RESPONSE_CODE_APPROVED
    assert time.monotonic() - started < 0.3


@pytest.mark.parametrize(
    "spec",
    [
        {"fail": ctl.FailFault(rate=1.5)},
        {"drop": ctl.DropFault(rate=-0.1)},
        {"operations": ["authorise"]},
        {
            "latency": ctl.LatencyFault(
                distribution=ctl.LATENCY_DISTRIBUTION_UNIFORM, min_ms=9, max_ms=1
            )
        },
        {"fail": ctl.FailFault(rate=1.0, grpc_status=0)},
    ],
)
async def test_bad_fault_specs_are_refused(net: Net, spec: dict) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await net.set("acq-x", **spec)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    result = await net.acquirer.Authorize(auth(new_rrn()), timeout=2)
    assert result.response_code == c.RESPONSE_CODE_APPROVED


def test_draws_are_reproducible_per_seed_and_node() -> None:
    faults = RuntimeFaults(fail_rate=0.3, drop_rate=0.3, seed=42)

    def draws(node: str) -> list:
        control = FaultControl(node)
        control.set(faults)
        return [control.draw("authorize") for _ in range(200)]

    first = draws("acq-x")
    assert first == draws("acq-x")
    assert first != draws("acq-y")
    fails = sum(d.fail is not None for d in first)
    drops = sum(d.drop is DropMode.ABORT for d in first)
    assert 30 < fails < 90 and 20 < drops < 80


def test_operations_outside_the_filter_draw_nothing() -> None:
    control = FaultControl("n")
    control.set(RuntimeFaults(fail_rate=1.0, operations=frozenset({"capture"}), seed=1))
    assert control.draw("authorize").fail is None
    assert control.draw("capture").fail is not None
    control.clear()
    assert control.draw("capture").fail is None
