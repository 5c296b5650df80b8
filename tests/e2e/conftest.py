"""End-to-end fixtures: the default topology on free loopback ports, every node (issuers,
schemes, acquirers, switch) a real process, reached over real gRPC."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tomllib
from pathlib import Path

import grpc
import pytest

from hsm.terminal_sim import SecureElement
from hsm.testing import process_test_config
from network.ports import with_free_ports, write_topology
from network.stack import Stack
from terminals.keys import inject_from_hsm

from .clients import Books, RawTerminal

DEFAULT_TOPOLOGY = Path(__file__).resolve().parents[2] / "topology" / "default.toml"


def start_stack(run_dir: Path, doc: dict | None = None, **kw) -> Stack:
    """A whole stack from a topology document (default: topology/default.toml) on free ports."""
    if doc is None:
        doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    path = run_dir / "topology.toml"
    write_topology(with_free_ports(doc), path)
    # Every party's keys (switch BDK, token, fingerprint, vault, ZPKs; issuers' CVK, IMK, PVK),
    # generated in the throwaway test token.
    subprocess.run(
        [sys.executable, "-m", "hsm.cli", "keys", "--topology", str(path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return Stack(path, run_dir, **kw).start()


@pytest.fixture(scope="session", autouse=True)
def hsm_token(tmp_path_factory):
    """A throwaway SoftHSM token, exported to the environment the stack's processes inherit."""
    return process_test_config(tmp_path_factory.mktemp("softhsm"))


@pytest.fixture(scope="session")
async def stack(tmp_path_factory, hsm_token):
    run_dir = tmp_path_factory.mktemp("stack")
    s = await asyncio.to_thread(start_stack, run_dir)
    yield s
    await asyncio.to_thread(s.stop)


@pytest.fixture(scope="session")
async def channels(stack):
    made: dict[str, grpc.aio.Channel] = {}
    for node_id in stack.node_ids:
        made[node_id] = grpc.aio.insecure_channel(stack.address(node_id))
    yield made
    for ch in made.values():
        await ch.close()


async def injected() -> SecureElement:
    """A terminal secure element loaded by key injection from the switch's BDK."""
    se = SecureElement()
    await inject_from_hsm(se)
    return se


@pytest.fixture(scope="session")
async def pos(stack, channels) -> RawTerminal:
    return RawTerminal(channels[stack.topology.switch.id], await injected())


@pytest.fixture(scope="session")
def books(stack, channels) -> Books:
    return Books({i.id: channels[i.id] for i in stack.topology.issuers})
