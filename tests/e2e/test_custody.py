"""Key custody on a real stack: no child holds a PIN in its environment, each opens only its own
party's token, and a node handed another party's PIN file does not start; under
``device_binding = "registered"`` the switch serves only devices the KIF registered there."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import grpc
import pytest

from hsm.config import hsm_home, pin_path
from payswitch.certs import CertDir
from payswitch.v1 import admin_pb2, admin_pb2_grpc, terminal_pb2
from terminals.keys import inject_from_kif
from terminals.secure_element import SecureElement

from .clients import RawTerminal, admin_channel, code
from .conftest import DEFAULT_TOPOLOGY, injected, start_stack

pytestmark = pytest.mark.e2e

PAN = "4111111111111111"


@pytest.fixture(scope="module")
def custody_stack(tmp_path_factory, hsm_token):
    s = start_stack(tmp_path_factory.mktemp("custody-stack"))
    try:
        yield s
    finally:
        s.stop()


def _environ(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_no_pin_in_any_child_environment(custody_stack) -> None:
    pins = sorted((hsm_home() / "pins").glob("*pin"))
    values = {p.read_text().strip() for p in pins}
    assert len(values) >= 14  # switch, KIF, 2 acquirers, 3 issuers: user and SO PINs
    for node_id in custody_stack.node_ids:
        pid = custody_stack.pid(node_id)
        assert pid is not None, node_id
        env = _environ(pid)
        assert not any(v.startswith("PAYSWITCH_HSM_PIN") for v in env), node_id
        blob = "\0".join(env)
        assert not any(value in blob for value in values), node_id


def test_each_key_holder_is_given_its_own_pin_file(custody_stack) -> None:
    topo = custody_stack.topology
    holders = [topo.switch.id, *(a.id for a in topo.acquirers), *(i.id for i in topo.issuers)]
    for node_id in holders:
        argv = _cmdline(custody_stack.pid(node_id))
        party = "switch" if node_id == topo.switch.id else node_id
        assert argv[argv.index("--hsm-pin-file") + 1] == str(pin_path(hsm_home(), party))
    for scheme in topo.schemes:  # schemes hold no keys
        assert "--hsm-pin-file" not in _cmdline(custody_stack.pid(scheme.id))


def test_a_node_given_another_party_pin_does_not_start(custody_stack) -> None:
    """acq-alpha's process with bank-a's PIN file: its own token refuses the login."""
    env = {k: v for k, v in os.environ.items() if k != "PAYSWITCH_HSM_DEV"}
    out = subprocess.run(
        [
            sys.executable, "-m", "stack.node", "--topology", str(custody_stack.topology_path),
            "--id", "acq-alpha", "--hsm-pin-file", str(pin_path(hsm_home(), "bank-a")),
            "--certs-dir", str(CertDir(custody_stack.certs_dir).node_dir("acq-alpha").root),
        ],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode != 0
    assert "acq-alpha: HSM unavailable" in out.stderr and "PinIncorrect" in out.stderr
    pin = pin_path(hsm_home(), "bank-a").read_text().strip()
    assert pin not in out.stderr + out.stdout


# --- devices registered by the KIF, under [switch] device_binding = "registered" -------------


@pytest.fixture(scope="module")
def strict_stack(tmp_path_factory, hsm_token):
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    doc["switch"]["device_binding"] = "registered"
    s = start_stack(tmp_path_factory.mktemp("strict-stack"), doc)
    try:
        yield s
    finally:
        s.stop()


async def test_strict_switch_refuses_a_device_the_kif_did_not_register_there(strict_stack):
    # Injected by the KIF, but registered at the KIF only: the switch never heard of it.
    unknown = await injected("T-0001")
    pos = RawTerminal.connect(strict_stack, unknown, "T-0001", "M-GROCER")
    try:
        req = pos.auth_request(PAN, 730)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pos.authorize(req)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "encrypted_card.ksn" in (err.value.details() or "")
        assert "not registered" in (err.value.details() or "")
    finally:
        await pos.channel.close()

    # Through the KIF with the switch's admin port: registered there before it is injected.
    known = SecureElement()
    await inject_from_kif(
        known,
        "T-0001",
        switch_admin=strict_stack.admin_address(),
        certs_dir=str(strict_stack.certs_dir),
    )
    pos = RawTerminal.connect(strict_stack, known, "T-0001", "M-GROCER")
    try:
        # Nothing was recorded for the unregistered device's authorization.
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await pos.stub.GetTransaction(pos.lookup_request(key=req.idempotency_key), timeout=2.0)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        sale = await pos.pay(PAN, 731)
        assert code(sale) == "00"
    finally:
        await pos.channel.close()
    # The unregistered device's other operations are refused the same way: a capture of that
    # sale, on the same terminal, changes nothing.
    pos = RawTerminal.connect(strict_stack, unknown, "T-0001", "M-GROCER")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pos.stub.Capture(pos.capture_request(sale.transaction_id), timeout=2.0)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not registered" in (err.value.details() or "")
    finally:
        await pos.channel.close()
    pos = RawTerminal.connect(strict_stack, known, "T-0001", "M-GROCER")
    try:
        assert (await pos.get(sale.transaction_id)).state == terminal_pb2.TRANSACTION_STATE_APPROVED
    finally:
        await pos.channel.close()
    # The same device presented by another terminal is still refused.
    other = RawTerminal.connect(strict_stack, known, "T-0002", "M-GROCER")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await other.authorize(other.auth_request(PAN, 732))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await other.channel.close()


async def test_register_device_refuses_bad_input_and_foreign_devices(strict_stack):
    channel = admin_channel(strict_stack)
    stub = admin_pb2_grpc.AdminServiceStub(channel)
    try:
        register = admin_pb2.RegisterDeviceRequest
        for request, field in (
            (register(ikid="00000001ZZZZZZZZ", terminal_id="T-0001"), "ikid"),
            (register(ikid="0000000100000001", terminal_id="T-9999"), "terminal_id"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.RegisterDevice(request, timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in (err.value.details() or "")
        ok = admin_pb2.RegisterDeviceRequest(ikid="00000001CAFEF00D", terminal_id="T-0002")
        assert (await stub.RegisterDevice(ok, timeout=5)).created
        assert not (await stub.RegisterDevice(ok, timeout=5)).created
        foreign = admin_pb2.RegisterDeviceRequest(ikid="00000001CAFEF00D", terminal_id="T-0001")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RegisterDevice(foreign, timeout=5)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        await channel.close()
