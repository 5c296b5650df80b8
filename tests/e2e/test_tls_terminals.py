"""Terminal mTLS and revocation, end to end: real switch and network processes, real TLS over
127.0.0.1, certificates made by the stack (``payswitch.certs``) in its run dir, revocation in the
SQLite store through the AdminService.

A terminal is served with its own certificate; a certificate used for another terminal's id is
refused PERMISSION_DENIED with nothing recorded; no certificate, a certificate of another CA,
or the admin certificate fail at the handshake; the admin port refuses terminal certificates;
a revoked terminal is refused UNAUTHENTICATED until reinstated."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import grpc
import pytest

from payswitch import tls
from payswitch.certs import make_certs
from payswitch.v1 import admin_pb2, admin_pb2_grpc, terminal_pb2
from payswitch.v1 import terminal_pb2_grpc as tgrpc

from .clients import Books, RawTerminal, admin_channel, code, new_key, node_channels
from .conftest import injected, start_stack

pytestmark = pytest.mark.e2e

VISA = "4111111111111111"  # bank-a, account A-1001


@pytest.fixture(scope="module")
async def tls_stack(tmp_path_factory, hsm_token):
    s = await asyncio.to_thread(start_stack, tmp_path_factory.mktemp("tls"), store="sqlite")
    channels = node_channels(s)
    admin = admin_channel(s)
    try:
        yield s, Books({i.id: channels[i.id] for i in s.topology.issuers}), admin
    finally:
        await admin.close()
        for ch in channels.values():
            await ch.close()
        await asyncio.to_thread(s.stop)


async def _refused(call, status: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == status, err.value.details()
    return err.value.details() or ""


def _echo(terminal_id: str) -> terminal_pb2.EchoRequest:
    return terminal_pb2.EchoRequest(terminal_id=terminal_id, message="hi")


async def test_a_terminal_with_its_own_certificate_is_served(tls_stack):
    stack, _, _ = tls_stack
    pos = RawTerminal.connect(stack, await injected(), "T-0002", "M-GROCER")
    try:
        resp = await pos.pay(VISA, 1200)
        assert code(resp) == "00"
        assert (await pos.get(resp.transaction_id)).transaction_id == resp.transaction_id
    finally:
        await pos.channel.close()


async def test_a_certificate_used_for_another_terminal_is_refused_with_nothing_recorded(
    tls_stack,
):
    stack, books, _ = tls_stack
    se = await injected()
    # T-0001's channel (its certificate) sending requests that name T-0002.
    impostor = RawTerminal.connect(stack, se, "T-0001", "M-GROCER")
    impostor.terminal_id = "T-0002"
    owner = RawTerminal.connect(stack, se, "T-0002", "M-GROCER")
    try:
        before = await books.account("bank-a", "A-1001")
        req = impostor.auth_request(VISA, 1300)
        details = await _refused(impostor.authorize(req), grpc.StatusCode.PERMISSION_DENIED)
        assert "certificate" in details
        await _refused(impostor.stub.Echo(_echo("T-0002")), grpc.StatusCode.PERMISSION_DENIED)
        await _refused(impostor.capture("no-such-tx"), grpc.StatusCode.PERMISSION_DENIED)
        # Nothing recorded under the key, nothing held at the issuer.
        lookup = owner.lookup_request(key=req.idempotency_key)
        await _refused(owner.stub.GetTransaction(lookup, timeout=2.0), grpc.StatusCode.NOT_FOUND)
        assert await books.account("bank-a", "A-1001") == before
    finally:
        await impostor.channel.close()
        await owner.channel.close()


async def _handshake_refused(address: str, creds: grpc.ChannelCredentials | None) -> None:
    channel = (
        grpc.aio.secure_channel(address, creds)
        if creds is not None
        else grpc.aio.insecure_channel(address)
    )
    try:
        stub = tgrpc.TerminalServiceStub(channel)
        await _refused(stub.Echo(_echo("T-0001"), timeout=2.0), grpc.StatusCode.UNAVAILABLE)
    finally:
        await channel.close()


async def test_no_client_certificate_or_plaintext_is_refused_at_the_handshake(tls_stack):
    stack, _, _ = tls_stack
    address = stack.address(stack.topology.switch.id)
    ca = (stack.certs_dir / "ca.pem").read_bytes()
    await _handshake_refused(address, grpc.ssl_channel_credentials(ca))  # no client cert
    await _handshake_refused(address, None)  # plaintext


async def test_a_certificate_of_another_ca_is_refused_at_the_handshake(tls_stack, tmp_path):
    stack, _, _ = tls_stack
    await asyncio.to_thread(make_certs, tmp_path / "rogue", ["T-0001"])
    rogue = tls.client_credentials(
        stack.certs_dir / "ca.pem",  # trusts the real switch, presents a rogue T-0001
        tls.CertDir(tmp_path / "rogue").terminal("T-0001"),
    )
    await _handshake_refused(stack.address(stack.topology.switch.id), rogue)


async def test_the_terminal_port_refuses_the_admin_certificate(tls_stack):
    stack, _, _ = tls_stack
    await _handshake_refused(stack.address(stack.topology.switch.id), stack.admin_credentials())


async def test_the_admin_port_refuses_a_terminal_certificate(tls_stack):
    stack, _, _ = tls_stack
    channel = grpc.aio.secure_channel(stack.admin_address(), stack.terminal_credentials("T-0001"))
    try:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        await _refused(
            stub.ListTerminals(admin_pb2.ListTerminalsRequest(), timeout=2.0),
            grpc.StatusCode.UNAVAILABLE,
        )
    finally:
        await channel.close()


async def test_the_probe_certificate_passes_the_handshake_but_is_no_terminal(tls_stack):
    stack, _, _ = tls_stack
    channel = grpc.aio.secure_channel(
        stack.address(stack.topology.switch.id), tls.probe_credentials(stack.certs_dir)
    )
    try:
        stub = tgrpc.TerminalServiceStub(channel)
        await _refused(stub.Echo(_echo("T-0001"), timeout=2.0), grpc.StatusCode.PERMISSION_DENIED)
    finally:
        await channel.close()


async def test_revoke_refuses_the_terminal_and_reinstate_serves_it_again(tls_stack):
    stack, books, admin_ch = tls_stack
    admin = admin_pb2_grpc.AdminServiceStub(admin_ch)
    pos = RawTerminal.connect(stack, await injected(), "T-0003", "M-FUEL")
    try:
        assert (await pos.stub.Echo(_echo("T-0003"), timeout=2.0)).message == "hi"
        revoked = await admin.RevokeTerminal(
            admin_pb2.RevokeTerminalRequest(terminal_id="T-0003", reason="reported stolen"),
            timeout=5.0,
        )
        assert revoked.terminal.revoked and revoked.terminal.revoke_reason == "reported stolen"
        listed = await admin.ListTerminals(admin_pb2.ListTerminalsRequest(), timeout=5.0)
        assert {t.terminal_id: t.revoked for t in listed.terminals} == {
            "T-0001": False,
            "T-0002": False,
            "T-0003": True,
        }

        before = await books.account("bank-a", "A-1001")
        req = pos.auth_request(VISA, 1400, key=new_key())
        assert "revoked" in await _refused(pos.authorize(req), grpc.StatusCode.UNAUTHENTICATED)
        await _refused(pos.stub.Echo(_echo("T-0003"), timeout=2.0), grpc.StatusCode.UNAUTHENTICATED)
        assert await books.account("bank-a", "A-1001") == before

        back = await admin.ReinstateTerminal(
            admin_pb2.ReinstateTerminalRequest(terminal_id="T-0003"), timeout=5.0
        )
        assert back.was_revoked and not back.terminal.revoked
        assert code(await pos.pay(VISA, 1500)) == "00"
    finally:
        await admin.ReinstateTerminal(
            admin_pb2.ReinstateTerminalRequest(terminal_id="T-0003"), timeout=5.0
        )
        await pos.channel.close()


async def test_the_admin_api_refuses_an_unknown_terminal(tls_stack):
    _, _, admin_ch = tls_stack
    admin = admin_pb2_grpc.AdminServiceStub(admin_ch)
    await _refused(
        admin.RevokeTerminal(admin_pb2.RevokeTerminalRequest(terminal_id="T-9999"), timeout=5.0),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


def _admin_cli(stack, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "switch.cli.admin", "--topology", str(stack.topology_path)]
    argv += ["--certs-dir", str(stack.certs_dir), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


async def test_the_admin_cli_lists_revokes_and_reinstates(tls_stack):
    stack, _, _ = tls_stack
    listed = await asyncio.to_thread(_admin_cli, stack, "terminals", "list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [
        "T-0001",
        "T-0002",
        "T-0003",
    ]
    try:
        revoked = await asyncio.to_thread(
            _admin_cli, stack, "terminals", "revoke", "T-0002", "--reason", "lost"
        )
        assert revoked.returncode == 0 and "REVOKED" in revoked.stdout, revoked.stderr
    finally:
        back = await asyncio.to_thread(_admin_cli, stack, "terminals", "reinstate", "T-0002")
    assert back.returncode == 0 and "active" in back.stdout
    unknown = await asyncio.to_thread(_admin_cli, stack, "terminals", "revoke", "T-9999")
    assert unknown.returncode == 1 and "INVALID_ARGUMENT" in unknown.stderr
