"""Two switch processes on one Cassandra keyspace, every node a real process.

The stack starts both switches at once on a keyspace that does not exist yet, so they also
race to create the schema (one migrates under the LWT lock, the other waits for it). Then 50
concurrent retries of one Authorize (same key, same content), spread over both processes,
must move money once: the issuer's held amount proves it.
"""

from __future__ import annotations

import asyncio
import sys
import tomllib
from pathlib import Path

import pytest
from cassandra.cluster import Cluster

from payswitch.v1 import terminal_pb2
from payswitch.world.ports import with_free_ports, write_topology
from stack.launcher import Stack

from .clients import Books, RawTerminal, code, node_channels
from .conftest import DEFAULT_TOPOLOGY, cassandra_keyspace, drop_keyspace, injected, start_stack

_SUPPORT = str(Path(__file__).resolve().parents[1] / "support")
if _SUPPORT not in sys.path:
    sys.path.insert(0, _SUPPORT)

import cassandra_node  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _every_value(host: str, keyspace: str) -> list[object]:
    """Every cell of every table of the keyspace (a test keyspace: small)."""
    cluster = Cluster([host], port=cassandra_node.PORT)
    try:
        session = cluster.connect()
        tables = session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
        )
        values: list[object] = []
        for t in tables:
            for row in session.execute(f"SELECT * FROM {keyspace}.{t.table_name} LIMIT 100000"):  # noqa: S608
                for v in row:
                    values.extend(v.items() if isinstance(v, dict) else [v])
        return values
    finally:
        cluster.shutdown()


def test_several_switches_need_a_shared_store(tmp_path: Path) -> None:
    path = tmp_path / "topology.toml"
    write_topology(with_free_ports(tomllib.loads(DEFAULT_TOPOLOGY.read_text())), path)
    with pytest.raises(ValueError, match="SQLite store serves one switch"):
        Stack(path, tmp_path, switches=2)
    stack = Stack(path, tmp_path, store="cassandra://127.0.0.1/x", switches=3)
    assert stack.switch_ids == ["switch-1", "switch-1-2", "switch-1-3"]
    assert len({stack.address(s) for s in stack.switch_ids}) == 3


@pytest.fixture(scope="module")
async def two_switches(tmp_path_factory, hsm_token):
    host, keyspace = await asyncio.to_thread(cassandra_keyspace, "e2e_two")
    url = f"cassandra://{host}:{cassandra_node.PORT}/{keyspace}?replication=1"
    run_dir = tmp_path_factory.mktemp("two-switches")
    stack = await asyncio.to_thread(start_stack, run_dir, store=url, switches=2)
    channels = node_channels(stack)
    try:
        yield stack, channels, (host, keyspace)
    finally:
        for ch in channels.values():
            await ch.close()
        await asyncio.to_thread(stack.stop)
        await asyncio.to_thread(drop_keyspace, host, keyspace)


@pytest.fixture(scope="module")
async def terminals(two_switches) -> list[RawTerminal]:
    """One terminal (one secure element) reaching either switch process."""
    stack, channels, _ = two_switches
    se = await injected()
    return [RawTerminal(channels[s], se) for s in stack.switch_ids]


@pytest.fixture(scope="module")
def books(two_switches) -> Books:
    stack, channels, _ = two_switches
    return Books({i.id: channels[i.id] for i in stack.topology.issuers})


async def test_two_switch_processes_share_one_keyspace(two_switches, terminals) -> None:
    stack, _, _ = two_switches
    assert len(stack.switch_ids) == 2 and all(stack.running(s) for s in stack.switch_ids)
    first, second = terminals
    paid = await first.pay("4111111111111111", 700)
    assert code(paid) == "00"
    seen = await second.get(paid.transaction_id)  # written by one process, read by the other
    assert seen.state == terminal_pb2.TRANSACTION_STATE_APPROVED


async def test_fifty_retries_over_two_switches_move_money_once(terminals, books) -> None:
    before = await books.account("bank-a", "A-1001")
    req = terminals[0].auth_request("4111111111111111", 3333)
    answers = await asyncio.gather(
        *(terminals[i % 2].authorize(req, timeout=5.0) for i in range(50))
    )
    assert {code(a) for a in answers} == {"00"}
    assert len({a.SerializeToString() for a in answers}) == 1  # every answer identical
    after = await books.account("bank-a", "A-1001")
    assert after.held - before.held == 3333  # one hold at the issuer, not two, not fifty
    assert after.balance == before.balance
    hold = await books.hold("bank-a", answers[0].rrn)
    assert hold.amount == 3333
    for t in terminals:  # both processes see the one transaction
        tx = await t.get(answers[0].transaction_id)
        assert tx.state == terminal_pb2.TRANSACTION_STATE_APPROVED


async def test_network_numbers_stay_unique_across_processes(terminals) -> None:
    """RRNs come from a store-backed sequence shared by both processes."""
    answers = await asyncio.gather(
        *(terminals[i % 2].pay("4111111111111111", 100 + i) for i in range(20))
    )
    assert {code(a) for a in answers} == {"00"}
    assert len({a.rrn for a in answers}) == 20
    assert len({a.transaction_id for a in answers}) == 20


async def test_the_store_holds_no_pan(two_switches, terminals) -> None:
    """Token, masked PAN and BIN only: no cell of any table (answers included) holds a PAN."""
    _, _, (host, keyspace) = two_switches
    paid = await terminals[1].pay("5555555555554444", 250, expiry="2906")
    assert code(paid) == "00"
    values = await asyncio.to_thread(_every_value, host, keyspace)
    assert len(values) > 100
    texts = [bytes(v).decode("latin-1") if isinstance(v, bytes) else str(v) for v in values]
    for pan in ("4111111111111111", "5555555555554444"):
        assert not [t for t in texts if pan in t]
