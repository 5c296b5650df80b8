"""A reversal that cannot be delivered is dead-lettered after ``max_attempts``, stays dead
(listed, the issuer's hold still open) when the nodes come back, and an operator's replay
through the switch's AdminService delivers it: the hold is released. The dead-letter gauge on
/metrics follows. SQLite store, every node a real process."""

import asyncio

import grpc
import pytest

from payswitch.v1 import admin_pb2

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

    listed = [i for i in await world.admin_items(dead=True) if i.transaction_id == tx_id]
    assert [(i.id, i.kind, i.attempts, i.dead) for i in listed] == [
        (dead["id"], "REVERSAL", SAF["max_attempts"], True)
    ]
    # The probes of path_answers may have left dead letters of their own (91s while the
    # switch's channel reconnected): settle them, then the gauge counts every dead letter.
    assert await until(lambda: _no_live_items(world))
    waiting = len(await world.admin_items(dead=True))
    assert waiting >= 1
    assert await until(lambda: _gauge(world, "payswitch_dlq_depth", float(waiting)))
    replayed = await world.admin.ReplayDeadLetter(
        admin_pb2.ReplayDeadLetterRequest(item_id=dead["id"]), timeout=5.0
    )
    assert not replayed.item.dead and replayed.item.attempts == 0
    assert await until(lambda: _reversed(world, tx_id), timeout=40)
    assert (await books.hold(ISSUER, resp.rrn)).state == RELEASED
    after = await books.account(ISSUER, "A-1001")
    assert (after.balance, after.held) == (before.balance, before.held)
    assert await world.item_of(tx_id, dead=True) is None
    assert len(await world.admin_items(dead=True)) == waiting - 1
    assert await until(lambda: _gauge(world, "payswitch_dlq_depth", float(waiting - 1)))
    assert await pos.authorize(req) == resp  # the terminal's answer never changed
    # Replaying what is not a dead letter, or nothing, is refused.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await world.admin.ReplayDeadLetter(
            admin_pb2.ReplayDeadLetterRequest(item_id=dead["id"]), timeout=5.0
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await world.admin.ReplayDeadLetter(
            admin_pb2.ReplayDeadLetterRequest(item_id="REVERSAL:nope"), timeout=5.0
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def _no_live_items(world):
    return await world.admin_items(dead=False) == []


async def _gauge(world, name, value):
    return await asyncio.to_thread(world.metric, name, "REVERSAL") == value


async def _reversed(world, tx_id):
    return await tx_state(world, tx_id) == REVERSED
