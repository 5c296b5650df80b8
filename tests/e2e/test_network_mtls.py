"""Every internal hop authenticated (real processes, mTLS on every hop): the network nodes refuse
a caller without a network certificate at the handshake and a caller of the wrong identity with
PERMISSION_DENIED, and either way nothing changes in the issuer's books; the whole flow still
approves; no process's certificate folder holds a CA key; junk naming a terminal does not spend
that terminal's rate allowance."""

from __future__ import annotations

import asyncio
import json
import stat
import tomllib
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from payswitch import tls
from payswitch.certs import CertDir
from payswitch.v1 import (
    common_pb2,
    control_pb2,
    control_pb2_grpc,
    network_pb2,
    network_pb2_grpc,
    settlement_pb2,
    settlement_pb2_grpc,
)

from .clients import Books, RawTerminal, code, node_channel, node_channels
from .conftest import DEFAULT_TOPOLOGY, injected, start_stack

pytestmark = pytest.mark.e2e

PAN = "4111111111111111"  # bank-a, account A-1001
YEAR_2100_MS = 4_102_444_800_000
TERMINALS = {"flow": "T-0101", "anonymous": "T-0102", "wrong": "T-0103", "victim": "T-0104"}


@pytest.fixture(scope="module")
async def world(tmp_path_factory, hsm_token):
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    # A small allowance that does not refill within the test: what junk would drain shows.
    doc["switch"].update(terminal_burst=3, terminal_rate_per_s=0.001)
    # One terminal per test, so that no test spends another's allowance.
    doc["terminals"] += [{"id": t, "merchant": "M-GROCER"} for t in TERMINALS.values()]
    s = await asyncio.to_thread(start_stack, tmp_path_factory.mktemp("mtls"), doc, store="sqlite")
    channels = node_channels(s)
    yield s, Books({i.id: channels[i.id] for i in s.topology.issuers}), channels
    for ch in channels.values():
        await ch.close()
    await asyncio.to_thread(s.stop)


def _direct_auth(rrn: str) -> network_pb2.NetworkAuthorization:
    """An authorization in clear, as a scheme would send it to the issuer."""
    return network_pb2.NetworkAuthorization(
        rrn=rrn,
        stan=1,
        pan=PAN,
        expiry="2812",
        scheme=common_pb2.CARD_SCHEME_VISA,
        amount=common_pb2.Money(minor_units=70_000, currency="EUR"),
    )


def _anonymous(stack, node: str) -> list[grpc.aio.Channel]:
    """Plaintext, and TLS that trusts the network CA but shows no client certificate."""
    ca = CertDir(stack.certs_dir).network_ca.cert.read_bytes()
    address = stack.address(node)
    return [
        grpc.aio.insecure_channel(address),
        grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca)),
    ]


def _as(stack, node: str, identity: str) -> grpc.aio.Channel:
    """A channel to ``node`` carrying the network certificate of ``identity``."""
    return node_channel(stack, node, as_node=identity)


async def _refused(call, status: grpc.StatusCode) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == status, err.value.details()


def _calls(channel: grpc.aio.Channel, tmp: Path, rrn: str) -> dict[str, object]:
    """The attacks on one node's port, by name (each a coroutine factory)."""
    issuer = network_pb2_grpc.IssuerServiceStub(channel)
    issuer_bo = settlement_pb2_grpc.IssuerSettlementServiceStub(channel)
    control = control_pb2_grpc.NodeControlServiceStub(channel)
    faults = control_pb2.FaultSpec(fail=control_pb2.FailFault(rate=1.0))
    return {
        "IssuerService.Authorize": lambda: issuer.Authorize(_direct_auth(rrn), timeout=5),
        "ExpireHolds": lambda: issuer_bo.ExpireHolds(
            settlement_pb2.ExpireHoldsRequest(now_ms=YEAR_2100_MS, report_dir=str(tmp)),
            timeout=5,
        ),
        "Present": lambda: issuer_bo.Present(
            settlement_pb2.PresentRequest(
                file_id="f1", acquirer_id="acq-alpha", report_dir=str(tmp)
            ),
            timeout=5,
        ),
        "SetFaults": lambda: control.SetFaults(
            control_pb2.SetFaultsRequest(faults=faults), timeout=5
        ),
    }


async def _state(books: Books, rrn: str):
    """bank-a's account A-1001 and the hold of ``rrn`` (None when there is none)."""
    account = await books.account("bank-a", "A-1001")
    try:
        hold = await books.hold("bank-a", rrn)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND
        hold = None
    return (account.balance, account.held, account.available, account.open_holds), hold


async def _pay(stack, test: str):
    pos = RawTerminal.connect(stack, await injected(), terminal_id=TERMINALS[test])
    try:
        return await pos.pay(PAN, 1_000)
    finally:
        await pos.channel.close()


async def test_the_whole_flow_approves_with_mtls_on_every_hop(world):
    stack, books, _ = world
    resp = await _pay(stack, "flow")
    assert code(resp) == "00"
    hold = await books.hold("bank-a", resp.rrn)  # the issuer acted on it: every hop carried it
    assert hold.amount == 1_000
    for node in stack.node_ids:
        serving = [
            json.loads(line)
            for line in stack.log_path(node).read_text().splitlines()
            if '"event":"serving"' in line.replace(" ", "")
        ]
        assert serving, node
        if node not in stack.switch_ids:
            assert serving[-1]["tls"] is True, node
        assert "PLAINTEXT_NETWORK" not in stack.log_path(node).read_text(), node


async def test_a_caller_without_a_network_certificate_is_refused_and_nothing_changes(
    world, tmp_path
):
    stack, books, _ = world
    placed = await _pay(stack, "anonymous")  # a hold that ExpireHolds at 2100 would release
    before = await _state(books, placed.rrn)
    rrn = "990000000001"
    for channel in _anonymous(stack, "bank-a"):
        for name, call in _calls(channel, tmp_path, rrn).items():
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, name
        await channel.close()
    for channel in _anonymous(stack, "acq-alpha"):
        settle = settlement_pb2_grpc.AcquirerSettlementServiceStub(channel).Settle(
            settlement_pb2.SettleRequest(clearing_path="x", report_dir=str(tmp_path)), timeout=5
        )
        await _refused(settle, grpc.StatusCode.UNAVAILABLE)
        await channel.close()
    assert await _state(books, placed.rrn) == before
    assert (await _state(books, rrn))[1] is None  # no hold placed for the clear PAN
    assert not any(tmp_path.rglob("*"))  # no report written
    assert code(await _pay(stack, "anonymous")) == "00"  # no fault was set on any node


async def test_a_valid_certificate_of_the_wrong_party_is_refused_and_nothing_changes(
    world, tmp_path
):
    stack, books, _ = world
    placed = await _pay(stack, "wrong")
    before = await _state(books, placed.rrn)
    rrn = "990000000002"
    wrong = {
        # Only a scheme node calls an issuer: not an acquirer, not the switch, not the operator.
        "IssuerService.Authorize": ["acq-alpha", "switch-1", None],
        # Only the switch (the settlement run) expires holds.
        "ExpireHolds": ["visanet", "acq-alpha", None],
        # Only an acquirer presents.
        "Present": ["visanet", "switch-1", None],
        # Only the network operator sets faults.
        "SetFaults": ["acq-alpha", "switch-1", "visanet"],
    }
    for name, identities in wrong.items():
        for identity in identities:
            channel = _as(stack, "bank-a", identity) if identity else node_channel(stack, "bank-a")
            await _refused(
                _calls(channel, tmp_path, rrn)[name](), grpc.StatusCode.PERMISSION_DENIED
            )
            await channel.close()
    # The acquirer's back office settles for the switch only; another acquirer or the operator
    # is refused.
    for identity in ("acq-beta", None):
        channel = (
            _as(stack, "acq-alpha", identity) if identity else node_channel(stack, "acq-alpha")
        )
        settle = settlement_pb2_grpc.AcquirerSettlementServiceStub(channel).Settle(
            settlement_pb2.SettleRequest(clearing_path="x", report_dir=str(tmp_path)), timeout=5
        )
        await _refused(settle, grpc.StatusCode.PERMISSION_DENIED)
        await channel.close()
    # Into the acquirer only the switch sends payments: a scheme's certificate is refused.
    channel = _as(stack, "acq-alpha", "visanet")
    await _refused(
        network_pb2_grpc.AcquirerServiceStub(channel).Authorize(_direct_auth(rrn), timeout=5),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await channel.close()
    # A terminal's certificate (another CA) does not pass the handshake of a node.
    d = CertDir(stack.certs_dir)
    terminal = tls.client_credentials(d.network_ca.cert, d.terminal("T-0001"))
    channel = grpc.aio.secure_channel(stack.address("bank-a"), terminal)
    await _refused(
        _calls(channel, tmp_path, rrn)["IssuerService.Authorize"](), grpc.StatusCode.UNAVAILABLE
    )
    await channel.close()
    assert await _state(books, placed.rrn) == before
    assert (await _state(books, rrn))[1] is None
    assert not any(tmp_path.rglob("*"))
    assert code(await _pay(stack, "wrong")) == "00"


async def test_the_right_party_is_served_so_the_refusals_are_about_identity(world):
    stack, books, _ = world
    channel = _as(stack, "bank-a", "visanet")
    result = await network_pb2_grpc.IssuerServiceStub(channel).Authorize(
        _direct_auth("990000000003"), timeout=5
    )
    await channel.close()
    assert result.response_code == common_pb2.RESPONSE_CODE_APPROVED
    assert (await books.hold("bank-a", "990000000003")).amount == 70_000
    operator = node_channel(stack, "bank-a")
    control = control_pb2_grpc.NodeControlServiceStub(operator)
    reply = await control.ClearFaults(control_pb2.ClearFaultsRequest(), timeout=5)
    assert reply.node_id == "bank-a"
    await operator.close()


async def test_no_process_is_given_a_ca_key(world):
    await asyncio.to_thread(_no_ca_key_given, world[0])


def _no_ca_key_given(stack) -> None:
    certs = CertDir(stack.certs_dir)
    ca_keys = stack.run_dir / "ca"
    assert stat.S_IMODE(ca_keys.stat().st_mode) == 0o700
    assert sorted(p.name for p in ca_keys.iterdir()) == ["admin-ca.key", "ca.key", "network-ca.key"]
    ca_publics = {
        x509.load_pem_x509_certificate(c.read_bytes())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        for c in (certs.ca.cert, certs.admin_ca.cert, certs.network_ca.cert)
    }
    keys = list(stack.certs_dir.rglob("*.key"))
    assert keys
    for path in keys:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert public not in ca_publics, path
    # Each process is given its own folder, and it holds its own keys only.
    for node in stack.node_ids:
        argv = Path(f"/proc/{stack.pid(node)}/cmdline").read_bytes().split(b"\0")
        given = Path(argv[argv.index(b"--certs-dir") + 1].decode())
        own = certs.switch_dir if node in stack.switch_ids else certs.node_dir(node)
        assert given == own.root
        held = sorted(p.name for p in given.glob("*.key"))
        assert held == (
            ["network.key", "switch.key"] if node in stack.switch_ids else ["network.key"]
        )


async def test_junk_naming_a_terminal_does_not_spend_its_allowance(world):
    stack, _, _ = world
    victim = TERMINALS["victim"]
    # T-0001's certificate, requests naming the victim: refused before any token is taken.
    impostor = RawTerminal.connect(stack, await injected(), terminal_id="T-0001")
    for _ in range(6):
        req = impostor.auth_request(PAN, 1_000)
        req.terminal_id = victim
        impostor.sign(req)
        await _refused(impostor.authorize(req), grpc.StatusCode.PERMISSION_DENIED)
    await impostor.channel.close()
    # The victim on its own certificate still has its whole allowance (3), and no more.
    pos = RawTerminal.connect(stack, await injected(), terminal_id=victim)
    for _ in range(3):
        assert code(await pos.pay(PAN, 1_000)) == "00"
    await _refused(pos.pay(PAN, 1_000), grpc.StatusCode.RESOURCE_EXHAUSTED)
    await pos.channel.close()
