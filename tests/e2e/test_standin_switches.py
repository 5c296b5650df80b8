"""Stand-in across two switch processes on one Cassandra keyspace, every node a real process:
with every acquirer down, concurrent stand-ins of one card spread over both processes never
pass the card's cumulative limit (the counter is in the store, moved by LWT), and the
stood-in approvals are advised (ADVISED) once the acquirers are back."""

from __future__ import annotations

import asyncio
import sys
import time
import tomllib
from pathlib import Path

import pytest

from payswitch.v1 import terminal_pb2
from switch.store import open_store

from .clients import Books, RawTerminal, code, node_channels
from .conftest import DEFAULT_TOPOLOGY, cassandra_keyspace, drop_keyspace, injected, start_stack

_SUPPORT = str(Path(__file__).resolve().parents[1] / "support")
if _SUPPORT not in sys.path:
    sys.path.insert(0, _SUPPORT)

import cassandra_node  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
async def two_switches(tmp_path_factory, hsm_token):
    host, keyspace = await asyncio.to_thread(cassandra_keyspace, "e2e_standin")
    url = f"cassandra://{host}:{cassandra_node.PORT}/{keyspace}?replication=1"
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    doc["breaker"].update(open_s=1)
    doc["standin"].update(floor={"EUR": 2000}, cumulative={"EUR": 6000}, advice_interval_s=0.5)
    # The schema first, from here: this test is about stand-in, not about two processes racing
    # to create a keyspace (test_cassandra_switches covers that).
    store = open_store(url)
    await store.open()
    await store.close()
    run_dir = tmp_path_factory.mktemp("standin-switches")
    stack = await asyncio.to_thread(start_stack, run_dir, doc, store=url, switches=2)
    channels = node_channels(stack)
    se = await injected()
    try:
        yield (
            stack,
            [RawTerminal(channels[s], se) for s in stack.switch_ids],
            Books({i.id: channels[i.id] for i in stack.topology.issuers}),
        )
    finally:
        for ch in channels.values():
            await ch.close()
        await asyncio.to_thread(stack.stop)
        await asyncio.to_thread(drop_keyspace, host, keyspace)


async def test_concurrent_stand_ins_over_two_switches_share_one_limit(two_switches):
    stack, terminals, books = two_switches
    stack.kill("acq-alpha")
    stack.kill("acq-beta")
    before = await books.account("bank-a", "A-1001")
    answers = await asyncio.gather(
        *(terminals[i % 2].pay("4111111111111111", 2000) for i in range(8))
    )
    codes = sorted(code(a) for a in answers)
    assert codes == ["00"] * 3 + ["61"] * 5  # 3 x 2000 = the 6000 limit, whichever process
    approved = [a for a in answers if code(a) == "00"]
    assert all(a.stood_in for a in approved)

    await asyncio.to_thread(stack.restart, "acq-alpha")
    await asyncio.to_thread(stack.restart, "acq-beta")
    states = []
    deadline = time.monotonic() + 30  # bounded: cool-down, probe, advice sweep
    while time.monotonic() < deadline:
        states = [(await terminals[0].get(a.transaction_id)).state for a in approved]
        if all(s == terminal_pb2.TRANSACTION_STATE_ADVISED for s in states):
            break
        await asyncio.sleep(0.2)
    assert states == [terminal_pb2.TRANSACTION_STATE_ADVISED] * 3
    after = await books.account("bank-a", "A-1001")
    assert (after.balance, after.held) == (before.balance, before.held + 6000)  # held once
