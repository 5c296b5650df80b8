"""kill -9 of the switch while an authorization is in flight, then a restart on the same
store: the transaction is reversed, the issuer's hold released, the idempotency key completed,
and a retry under the same key gets one consistent answer (91 with the transaction's id).

The issuer bank-a drops its answers, so the request is surely PENDING (the hold placed, no
answer) when the switch dies. Runs on SQLite and on the dev Cassandra node."""

import asyncio

import grpc
import pytest

from .clients import code
from .conftest import E2E_STORES, cassandra_keyspace, cassandra_node, drop_keyspace
from .saf_kit import (
    ISSUER,
    RELEASED,
    REVERSED,
    VISA,
    hold_placed,
    saf_world,
    tx_state,
    until,
)

pytestmark = pytest.mark.e2e

SAF = {
    "base_delay_s": 0.2,
    "max_delay_s": 1.0,
    "attempt_timeout_s": 1.0,
    "lease_s": 3.0,
    "poll_interval_s": 0.2,
    "scan_interval_s": 0.5,
}


@pytest.fixture(scope="module", params=E2E_STORES)
async def world(request, tmp_path_factory, hsm_token):
    keyspace = None
    store = "sqlite"
    if request.param == "cassandra":
        keyspace = await asyncio.to_thread(cassandra_keyspace, "e2e_crash")
        host, name = keyspace
        store = f"cassandra://{host}:{cassandra_node.PORT}/{name}?replication=1"
    w = await saf_world(
        tmp_path_factory, f"crash-{request.param}", SAF, store=store, drop_response_rate=1.0
    )
    yield w
    await w.close()
    if keyspace is not None:
        await asyncio.to_thread(drop_keyspace, *keyspace)


async def test_kill_9_while_pending_is_reversed_after_restart(world):
    pos, books = world.pos, world.books
    switch = world.stack.topology.switch.id
    before = await books.account(ISSUER, "A-1001")
    req = pos.auth_request(VISA, 7300)
    call = asyncio.create_task(pos.authorize(req, timeout=3.0))
    assert await hold_placed(world, before.held, 7300)  # PENDING in the switch, held
    await world.kill(switch)  # SIGKILL: no shutdown of any kind
    with pytest.raises(grpc.aio.AioRpcError):
        await call

    await world.set_issuer_faults(ISSUER)  # the issuer answers again
    await world.start(switch)  # same store, same topology

    # A retry under the same key: ABORTED (still in flight) until recovery completes the
    # key, then the recorded answer.
    resp = await until(lambda: _retry(pos, req), timeout=40, every=0.2)
    assert resp is not None, "the crashed request's key was never completed"
    assert code(resp) == "91"
    assert resp.transaction_id and resp.amount.minor_units == 7300
    assert await until(lambda: _reversed(world, resp.transaction_id), timeout=40)
    assert (await books.hold(ISSUER, resp.rrn)).state == RELEASED
    after = await books.account(ISSUER, "A-1001")
    assert (after.balance, after.held) == (before.balance, before.held)
    assert await pos.authorize(req) == resp  # consistent on every retry
    assert await world.item_of(resp.transaction_id, dead=False) is None


async def _retry(pos, req):
    try:
        return await pos.authorize(req, timeout=2.0)
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE):
            return None
        raise


async def _reversed(world, tx_id):
    return await tx_state(world, tx_id) == REVERSED
