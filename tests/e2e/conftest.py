"""End-to-end fixtures: the default topology on free loopback ports, every node (issuers,
schemes, acquirers, switch) a real process, reached over real gRPC."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import pytest
from cassandra.cluster import Cluster

from hsm.testing import process_test_config
from payswitch.world.ports import with_free_ports, write_topology
from stack.launcher import Stack
from terminals.keys import inject_from_kif
from terminals.secure_element import SecureElement

from .clients import Books, RawTerminal, node_channels

_SUPPORT = str(Path(__file__).resolve().parents[1] / "support")
if _SUPPORT not in sys.path:
    sys.path.insert(0, _SUPPORT)

import cassandra_node  # noqa: E402

DEFAULT_TOPOLOGY = Path(__file__).resolve().parents[2] / "topology" / "default.toml"


def start_stack(run_dir: Path, doc: dict | None = None, **kw) -> Stack:
    """A whole stack from a topology document (default: topology/default.toml) on free ports."""
    if doc is None:
        doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    # No wall-clock cut-off inside a test (a run spanning 22:00 UTC would close batches under
    # it): settlement tests trigger their cut-offs themselves.
    settlement = doc.setdefault("settlement", {})
    settlement["auto_close"] = False
    # Each stack its own clearing files and reports: in a shared folder two stacks' first
    # files take the same name and the second would be taken as settled already.
    if not Path(settlement.get("dir", ".run/settlement")).is_absolute():
        settlement["dir"] = str(run_dir / "settlement")
    # Each stack's issuers publish their stand-in files into its own run dir.
    doc.setdefault("standin", {})["files_dir"] = str(run_dir / "standin")
    path = run_dir / "topology.toml"
    write_topology(with_free_ports(doc), path)
    # Every party's keys (switch BDK, token, fingerprint, vault, ZPKs; issuers' CVK, IMK, PVK),
    # each generated in its party's throwaway test token, shared keys exchanged as key blocks.
    subprocess.run(
        [sys.executable, "-m", "payswitch.ceremony", "keys", "--topology", str(path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return Stack(path, run_dir, **kw).start()


@pytest.fixture(scope="session", autouse=True)
def hsm_token(tmp_path_factory):
    """A throwaway HSM home (one token per party, PIN files), its location exported to the
    environment the stack's processes inherit (no PIN is)."""
    return process_test_config(tmp_path_factory.mktemp("softhsm"))


# The spine's end-to-end tests run once on each state store backend.
E2E_STORES = ("sqlite", "cassandra")


def cassandra_keyspace(prefix: str) -> tuple[str, str]:
    """(host, fresh keyspace name) on the dev Cassandra node, started if needed."""
    host = cassandra_node.ensure_single_node()
    return host, f"{prefix}_{uuid.uuid4().hex[:12]}"


def drop_keyspace(host: str, keyspace: str) -> None:
    cluster = Cluster([host], port=cassandra_node.PORT)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    finally:
        cluster.shutdown()


@pytest.fixture(scope="session", params=E2E_STORES)
async def stack(request, tmp_path_factory, hsm_token):
    run_dir = tmp_path_factory.mktemp(f"stack-{request.param}")
    keyspace = None
    store = "sqlite"
    if request.param == "cassandra":
        keyspace = await asyncio.to_thread(cassandra_keyspace, "e2e_spine")
        host, name = keyspace
        store = f"cassandra://{host}:{cassandra_node.PORT}/{name}?replication=1"
    s = await asyncio.to_thread(start_stack, run_dir, store=store)
    try:
        yield s
    finally:
        await asyncio.to_thread(s.stop)
        if keyspace is not None:
            await asyncio.to_thread(drop_keyspace, *keyspace)


@pytest.fixture(scope="session")
async def channels(stack):
    made = node_channels(stack)  # the switch's channel carries T-0001's certificate
    yield made
    for ch in made.values():
        await ch.close()


async def injected(terminal_id: str = "T-0001") -> SecureElement:
    """A terminal secure element loaded by the key-injection facility's process (a new device
    registered at the KIF to ``terminal_id``)."""
    se = SecureElement()
    await inject_from_kif(se, terminal_id)
    return se


@pytest.fixture(scope="session")
async def pos(stack, channels) -> RawTerminal:
    return RawTerminal(channels[stack.topology.switch.id], await injected())


@pytest.fixture(scope="session")
def books(stack, channels) -> Books:
    return Books({i.id: channels[i.id] for i in stack.topology.issuers})
