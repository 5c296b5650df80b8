"""A reversal that cannot be delivered is dead-lettered after ``max_attempts``, stays dead
(listed, the issuer's hold still open) when the nodes come back, and an operator's replay
delivers it: the hold is released. SQLite store, every node a real process."""

import asyncio

import pytest

from .clients import code
from .saf_kit import (
    ACQUIRER,
    HELD,
    ISSUER,
    RELEASED,
    REVERSAL_PENDING,
    REVERSED,
    VISA,
    hold_placed,
    path_answers,
    saf_world,
    tx_state,
    until,
)

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


@pytest.fixture(scope="module")
async def world(tmp_path_factory, hsm_token):
    w = await saf_world(tmp_path_factory, "saf-dlq", SAF, drop_response_rate=1.0)
    yield w
    await w.close()


async def test_refused_until_dead_lettered_then_replayed(world):
    pos, books = world.pos, world.books
    before = await books.account(ISSUER, "A-1001")
    req = pos.auth_request(VISA, 4200)
    answer = asyncio.create_task(pos.authorize(req, timeout=3.0))
    assert await hold_placed(world, before.held, 4200)
    await world.kill(ACQUIRER)  # every reversal attempt is now refused (connection refused)
    resp = await answer
    assert code(resp) == "91"
    tx_id = resp.transaction_id

    dead = await until(lambda: world.item_of(tx_id, dead=True))
    assert dead, "not dead-lettered in time"
    assert dead["attempts"] == SAF["max_attempts"] and dead["dead"]
    assert ACQUIRER in dead["last_error"]
    assert await world.item_of(tx_id, dead=False) is None
    assert await tx_state(world, tx_id) == REVERSAL_PENDING
    assert (await books.hold(ISSUER, resp.rrn)).state == HELD

    # The nodes recover; the recovery sweep sees the transaction still REVERSAL_PENDING but a
    # dead letter waits for an operator.
    await world.set_issuer_faults(ISSUER)
    await world.start(ACQUIRER)
    assert await path_answers(world)
    assert (await world.item_of(tx_id, dead=True))["attempts"] == SAF["max_attempts"]

    [replayed] = await world.saf("replay", dead["id"])
    assert not replayed["dead"] and replayed["attempts"] == 0
    assert await until(lambda: _reversed(world, tx_id), timeout=40)
    assert (await books.hold(ISSUER, resp.rrn)).state == RELEASED
    after = await books.account(ISSUER, "A-1001")
    assert (after.balance, after.held) == (before.balance, before.held)
    assert await world.item_of(tx_id, dead=True) is None
    assert await pos.authorize(req) == resp  # the terminal's answer never changed


async def _reversed(world, tx_id):
    return await tx_state(world, tx_id) == REVERSED
