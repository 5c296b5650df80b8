"""A revocation made through one switch's admin API is honoured by another switch process on
the same Cassandra keyspace within the documented bound (one refresh period, 1 s, plus a store
read), and a reinstatement likewise. Real processes, mTLS, real Cassandra."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from payswitch.v1 import admin_pb2, admin_pb2_grpc, terminal_pb2

from .clients import RawTerminal, admin_channel
from .conftest import cassandra_keyspace, drop_keyspace, injected, start_stack

pytestmark = pytest.mark.e2e

BOUND_S = 1.0 + 2.0  # registry_refresh_s plus a generous store read on a loaded box


@pytest.fixture(scope="module")
async def two_switches(tmp_path_factory, hsm_token):
    import cassandra_node

    host, keyspace = await asyncio.to_thread(cassandra_keyspace, "e2e_revoke")
    url = f"cassandra://{host}:{cassandra_node.PORT}/{keyspace}?replication=1"
    stack = await asyncio.to_thread(
        start_stack, tmp_path_factory.mktemp("revoke-shared"), store=url, switches=2
    )
    try:
        yield stack
    finally:
        await asyncio.to_thread(stack.stop)
        await asyncio.to_thread(drop_keyspace, host, keyspace)


async def _status(pos: RawTerminal) -> grpc.StatusCode:
    try:
        await pos.stub.Echo(terminal_pb2.EchoRequest(terminal_id="T-0002"), timeout=2.0)
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def _until(pos: RawTerminal, wanted: grpc.StatusCode) -> float:
    started = time.monotonic()
    while time.monotonic() - started < 10.0:
        if await _status(pos) == wanted:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    pytest.fail(f"not {wanted.name} within 10 s")


async def test_a_revocation_reaches_the_other_switch_within_the_refresh_bound(two_switches):
    stack = two_switches
    first, second = stack.switch_ids
    se = await injected()
    on_second = RawTerminal.connect(stack, se, "T-0002", "M-GROCER", switch_id=second)
    admin_ch, other_ch = admin_channel(stack, first), admin_channel(stack, second)
    admin = admin_pb2_grpc.AdminServiceStub(admin_ch)
    try:
        assert await _status(on_second) == grpc.StatusCode.OK
        await admin.RevokeTerminal(
            admin_pb2.RevokeTerminalRequest(terminal_id="T-0002", reason="stolen"), timeout=10.0
        )
        took = await _until(on_second, grpc.StatusCode.UNAUTHENTICATED)
        assert took < BOUND_S, took
        listed = await admin_pb2_grpc.AdminServiceStub(other_ch).ListTerminals(
            admin_pb2.ListTerminalsRequest(), timeout=10.0
        )
        assert {t.terminal_id for t in listed.terminals if t.revoked} == {"T-0002"}
        await admin.ReinstateTerminal(
            admin_pb2.ReinstateTerminalRequest(terminal_id="T-0002"), timeout=10.0
        )
        took = await _until(on_second, grpc.StatusCode.OK)
        assert took < BOUND_S, took
    finally:
        await admin_ch.close()
        await other_ch.close()
        await on_second.channel.close()
