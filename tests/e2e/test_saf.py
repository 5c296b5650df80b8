"""Store-and-forward reversals end to end (SQLite store; every node a real process).

The issuer bank-a runs with ``drop_response_rate = 1``: it acts on every message (places the
hold, releases it) and never answers, which is "the connection broke after sending". The
acquirer is killed while the authorization waits, so the switch gets no answer (91) and its
reversal cannot be delivered; the tests then bring the nodes back and look at the issuer's
books."""

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
    saf_world,
    tx_state,
    until,
)

pytestmark = pytest.mark.e2e

SAF = {
    "max_attempts": 100,
    "base_delay_s": 0.2,
    "max_delay_s": 1.0,
    "attempt_timeout_s": 1.0,
    "lease_s": 3.0,
    "poll_interval_s": 0.2,
    "scan_interval_s": 1.0,
}


@pytest.fixture(scope="module")
async def world(tmp_path_factory, hsm_token):
    w = await saf_world(tmp_path_factory, "saf", SAF, drop_response_rate=1.0)
    yield w
    await w.close()


async def test_acquirer_down_91_reversal_queued_and_delivered_when_back(world):
    pos, books = world.pos, world.books
    before = await books.account(ISSUER, "A-1001")
    req = pos.auth_request(VISA, 2500)
    answer = asyncio.create_task(pos.authorize(req, timeout=3.0))
    assert await hold_placed(world, before.held, 2500)  # the issuer approved and holds it
    await world.kill(ACQUIRER)  # the switch's call breaks after sending
    resp = await answer
    assert code(resp) == "91"
    tx_id = resp.transaction_id

    # Queued durably and retried while the acquirer is down; the money stays held.
    item = await until(lambda: _failed_item(world, tx_id))
    assert item and item["kind"] == "REVERSAL" and not item["dead"]
    assert ACQUIRER in item["last_error"]
    assert await tx_state(world, tx_id) == REVERSAL_PENDING
    assert (await books.hold(ISSUER, resp.rrn)).state == HELD

    # The issuer answers again and the acquirer comes back: the reversal is delivered.
    await world.set_issuer_faults(ISSUER)
    await world.start(ACQUIRER)
    assert await until(lambda: _is(world, tx_id, REVERSED), timeout=40) == REVERSED
    assert (await books.hold(ISSUER, resp.rrn)).state == RELEASED
    after = await books.account(ISSUER, "A-1001")
    assert (after.balance, after.held) == (before.balance, before.held)
    assert await world.item_of(tx_id, dead=False) is None  # delivered: not waiting any more
    # The terminal's recorded answer did not change.
    assert await pos.authorize(req) == resp


async def test_approval_lost_after_the_deadline_changes_nothing_the_terminal_was_told(world):
    """The issuer approves (places the hold) but its approval never reaches the switch inside
    the terminal's deadline: the terminal is told 91, a retry under the same key replays that
    91, and the reversal queued with it releases the hold."""
    pos, books = world.pos, world.books
    await world.set_issuer_faults(ISSUER, drop_response_rate=1.0)
    before = await books.account(ISSUER, "A-1001")
    req = pos.auth_request(VISA, 3100)
    resp = await pos.authorize(req, timeout=1.0)
    assert code(resp) == "91"
    assert (await books.hold(ISSUER, resp.rrn)).state in (HELD, RELEASED)  # it did approve
    assert await pos.authorize(req) == resp  # the recorded answer
    # The reversal reached the issuer (which released the hold) but its acknowledgement was
    # dropped too: still owed until the issuer answers again.
    assert await until(lambda: _failed_item(world, resp.transaction_id))
    await world.set_issuer_faults(ISSUER)
    tx_id = resp.transaction_id
    assert await until(lambda: _is(world, tx_id, REVERSED), timeout=40) == REVERSED
    assert (await books.hold(ISSUER, resp.rrn)).state == RELEASED
    after = await books.account(ISSUER, "A-1001")
    assert (after.balance, after.held) == (before.balance, before.held)
    assert await pos.authorize(req) == resp


async def _failed_item(world, tx_id):
    item = await world.item_of(tx_id, dead=False)
    return item if item and item["attempts"] >= 1 else None


async def _is(world, tx_id, state):
    current = await tx_state(world, tx_id)
    return current if current == state else None
