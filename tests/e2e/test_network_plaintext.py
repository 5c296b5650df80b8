"""Plaintext mode (``[network] tls = false``, ``[switch] tls = false``: tests and benchmarks
only), on real processes: every process says so loudly, the admin API is not served at all,
payments still flow, and junk naming a terminal cannot spend that terminal's rate allowance
even though nothing authenticates the sender at admission."""

from __future__ import annotations

import asyncio
import tomllib

import grpc
import pytest

from payswitch.v1 import admin_pb2, admin_pb2_grpc, terminal_pb2

from .clients import RawTerminal, code, new_key, switch_channel
from .conftest import DEFAULT_TOPOLOGY, injected, start_stack

pytestmark = pytest.mark.e2e

PAN = "4111111111111111"
VICTIM = "T-0002"


@pytest.fixture(scope="module")
async def plain(tmp_path_factory, hsm_token):
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    doc["network"] = {"tls": False}
    doc["switch"].update(tls=False, terminal_burst=3, terminal_rate_per_s=0.001)
    s = await asyncio.to_thread(start_stack, tmp_path_factory.mktemp("plain"), doc, store="sqlite")
    yield s
    await asyncio.to_thread(s.stop)


async def _refused(call, status: grpc.StatusCode) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == status, err.value.details()


async def test_every_process_warns_and_the_admin_api_is_not_served(plain):
    for node in plain.node_ids:
        assert "PLAINTEXT_NETWORK" in plain.log_path(node).read_text(), node
    assert "admin_port_not_opened" in plain.log_path(plain.topology.switch.id).read_text()
    assert not (plain.run_dir / "certs").exists()  # nothing to hand out: no CA made
    async with grpc.aio.insecure_channel(plain.admin_address()) as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        await _refused(
            stub.RevokeTerminal(admin_pb2.RevokeTerminalRequest(terminal_id=VICTIM), timeout=2),
            grpc.StatusCode.UNAVAILABLE,
        )


async def test_payments_still_flow_in_plaintext(plain):
    pos = RawTerminal.connect(plain, await injected(), terminal_id="T-0001")
    assert code(await pos.pay(PAN, 1_000)) == "00"
    await pos.channel.close()


async def test_junk_naming_a_terminal_does_not_spend_its_allowance(plain):
    junk = RawTerminal.connect(plain, await injected(), terminal_id=VICTIM)
    # Authorizations whose MAC does not verify, or that are malformed: refused before the
    # terminal's token would be taken.
    for _ in range(3):
        req = junk.auth_request(PAN, 1_000)
        req.mac = bytes(len(req.mac))  # a MAC that does not verify
        await _refused(junk.authorize(req), grpc.StatusCode.UNAUTHENTICATED)
    for _ in range(2):
        req = junk.auth_request(PAN, 1_000)
        req.amount.currency = "EURO"
        await _refused(junk.authorize(junk.sign(req)), grpc.StatusCode.INVALID_ARGUMENT)
    # Captures naming the terminal (they carry no MAC): they spend the allowance of the
    # connection they came on, which runs out, never the terminal's.
    answers = []
    for _ in range(5):
        req = terminal_pb2.CaptureRequest(
            idempotency_key=new_key(), terminal_id=VICTIM, transaction_id="tx-none"
        )
        try:
            await junk.stub.Capture(req, timeout=2.0)
            answers.append("OK")
        except grpc.aio.AioRpcError as exc:
            answers.append(exc.code().name)
    assert answers[3:] == ["RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED"], answers
    assert "RESOURCE_EXHAUSTED" not in answers[:3], answers
    await junk.channel.close()
    # The terminal itself, on another connection, still has its whole allowance (3).
    pos = RawTerminal(switch_channel(plain, VICTIM), await injected(), VICTIM, "M-GROCER")
    for _ in range(3):
        assert code(await pos.pay(PAN, 1_000)) == "00"
    await _refused(pos.pay(PAN, 1_000), grpc.StatusCode.RESOURCE_EXHAUSTED)
    await pos.channel.close()
