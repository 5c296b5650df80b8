"""A stand-in advice that cannot be delivered is dead-lettered after ``max_attempts``, stays
dead (listed by the AdminService, the transaction STOOD_IN, nothing posted) when the network is
back and the safety-net sweep has run, and an operator's replay through the AdminService
delivers it: the issuer posts it and the transaction is ADVISED. SQLite store, every node a
real process."""

import asyncio
import tomllib

import pytest

from payswitch.v1 import admin_pb2, network_pb2, terminal_pb2

from .clients import code
from .conftest import DEFAULT_TOPOLOGY, start_stack
from .saf_kit import EXPIRED, ISSUER, VISA, World, until

pytestmark = pytest.mark.e2e

SAF = {
    "max_attempts": 3,
    "base_delay_s": 0.1,
    "max_delay_s": 0.2,
    "attempt_timeout_s": 0.5,
    "lease_s": 2.0,
    "poll_interval_s": 0.1,
    "scan_interval_s": 1.0,
}
ACQUIRERS = ("acq-alpha", "acq-beta")


@pytest.fixture(scope="module")
async def world(tmp_path_factory, hsm_token):
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    doc["saf"] = SAF
    doc["breaker"].update(open_s=1)
    # The probe card's BIN is negative-listed, so a probe during the outage is declined 62
    # in stand-in (never approved): only the issuer's own 54 means the path is back.
    doc["standin"].update(enabled=True, negative_bins=["400000"], advice_interval_s=0.5)
    stack = await asyncio.to_thread(start_stack, tmp_path_factory.mktemp("advice-dlq"), doc)
    w = await World(stack).open()
    yield w
    await w.close()


async def _item(world: World, tx_id: str, dead: bool) -> admin_pb2.SafItem | None:
    items = await world.admin_items(dead)
    return next((i for i in items if i.transaction_id == tx_id), None)


async def _issuer_answers(world: World) -> bool:
    resp = await world.pos.pay(EXPIRED, 100)
    return code(resp) == "54" and not resp.stood_in


async def test_advice_dead_lettered_then_replayed_through_the_admin_api(world):
    pos, books = world.pos, world.books
    for acquirer in ACQUIRERS:
        await world.kill(acquirer)
    before = await books.account(ISSUER, "A-1001")
    resp = await pos.pay(VISA, 3100)
    assert code(resp) == "00" and resp.stood_in, resp.message
    tx_id = resp.transaction_id

    dead = await until(lambda: _item(world, tx_id, dead=True))
    assert dead, "the advice was not dead-lettered in time"
    assert (dead.id, dead.kind, dead.attempts) == (f"ADVICE:{tx_id}", "ADVICE", SAF["max_attempts"])
    assert dead.last_error == "no acquirer could take it"
    assert await _item(world, tx_id, dead=False) is None

    # The network comes back; the dead letter waits for an operator (the safety-net sweep
    # runs every 0.5 s, many times while two processes restart, and must not revive it).
    for acquirer in ACQUIRERS:
        await world.start(acquirer)
    assert await until(lambda: _issuer_answers(world), timeout=40, every=0.3)
    still = await _item(world, tx_id, dead=True)
    assert still is not None and still.attempts == SAF["max_attempts"]
    assert (await pos.get(tx_id)).state == terminal_pb2.TRANSACTION_STATE_STOOD_IN
    after = await books.account(ISSUER, "A-1001")
    assert (after.balance, after.held) == (before.balance, before.held)  # nothing held yet

    replayed = await world.admin.ReplayDeadLetter(
        admin_pb2.ReplayDeadLetterRequest(item_id=dead.id), timeout=5.0
    )
    assert not replayed.item.dead and replayed.item.attempts == 0
    assert await until(lambda: _advised(world, tx_id), timeout=30)
    hold = await books.hold(ISSUER, resp.rrn)
    assert (hold.state, hold.amount, hold.posted) == (network_pb2.HOLD_STATE_HELD, 3100, 0)
    after = await books.account(ISSUER, "A-1001")
    assert (after.balance, after.held) == (before.balance, before.held + 3100)
    assert await _item(world, tx_id, dead=True) is None
    assert await _item(world, tx_id, dead=False) is None


async def _advised(world: World, tx_id: str) -> bool:
    return (await world.pos.get(tx_id)).state == terminal_pb2.TRANSACTION_STATE_ADVISED
