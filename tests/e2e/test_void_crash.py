"""kill -9 of the switch while a void's reversal is in flight, then a restart on the same store:
the transaction and the issuer's books agree (hold released, transaction REVERSED).

Deterministic in flight: the issuer bank-a is switched to ``drop_response_rate = 1``, so it
releases the hold and then holds the answer until the switch's deadline. The test waits until
the issuer's books show the hold released, then kills the switch: the void has surely sent its
reversal and surely not recorded an answer. Before the fix the store said APPROVED forever
while the issuer had released the money; now the void's REVERSAL item, written before the
send, is the durable intent the restarted switch finishes, and the recovered void joins the
terminal's batch as a VOID.

The second test kills the switch while the issuer holds its *refusal* of a void (12: the sale
was captured at the issuer by a capture whose answer was dropped): the restarted switch's item
asks the issuer again, takes the refusal, and leaves the sale APPROVED (then captured by the
terminal's retry), never a REVERSAL_PENDING dead letter. SQLite store, real processes."""

import asyncio
import json
import time

import grpc
import pytest

from payswitch.crashpoint import ENV as CRASH_AT_ENV
from payswitch.v1 import network_pb2, terminal_pb2
from switch.backoffice.batches.sweep import join_unbatched
from switch.domain.batches import ItemKind
from switch.domain.transactions import TxState
from switch.store import open_store

from .clients import code
from .saf_kit import ISSUER, RELEASED, REVERSED, VISA, saf_world, tx_state, until

POSTED = network_pb2.HOLD_STATE_POSTED
APPROVED = terminal_pb2.TRANSACTION_STATE_APPROVED

pytestmark = pytest.mark.e2e

SAF = {
    "base_delay_s": 0.2,
    "max_delay_s": 1.0,
    "attempt_timeout_s": 1.0,
    "lease_s": 3.0,
    "poll_interval_s": 0.2,
    "scan_interval_s": 0.5,
}
PROBE_CARD = "4000000000000002"  # bank-a A-1002: probes never touch the voided account


@pytest.fixture(scope="module")
async def world(tmp_path_factory, hsm_token):
    w = await saf_world(tmp_path_factory, "void-crash", SAF)
    yield w
    await w.close()


async def _issuer_acts(world) -> bool:
    """One short authorization: True once bank-a placed its hold (its answer is dropped, so
    the switch answers 91 and reverses it later): the path to the issuer is up again."""
    try:
        resp = await world.pos.authorize(world.pos.auth_request(PROBE_CARD, 100), timeout=0.8)
    except grpc.aio.AioRpcError:
        return False
    if not resp.rrn:
        return False
    try:
        await world.books.hold(ISSUER, resp.rrn)
    except grpc.aio.AioRpcError:
        return False  # NOT_FOUND: the authorization never reached the issuer
    return True


async def _released(world, rrn: str) -> bool:
    return (await world.books.hold(ISSUER, rrn)).state == RELEASED


async def test_kill_9_with_the_void_in_flight_ends_reversed_like_the_books(world):
    pos, books = world.pos, world.books
    switch = world.stack.topology.switch.id
    before = await books.account(ISSUER, "A-1001")
    auth = await pos.pay(VISA, 5200)
    assert code(auth) == "00"
    assert (await books.account(ISSUER, "A-1001")).held == before.held + 5200

    await world.set_issuer_faults(ISSUER, drop_response_rate=1.0)
    assert await until(lambda: _issuer_acts(world), timeout=30, every=0.2)

    void = pos.void_request(auth.transaction_id)
    call = asyncio.ensure_future(pos.stub.Void(void, timeout=3.0))
    # The issuer released the hold and holds its answer: the void is in flight.
    assert await until(lambda: _released(world, auth.rrn), timeout=2.5, every=0.02)
    assert not call.done()
    await world.kill(switch)  # SIGKILL: no shutdown of any kind
    with pytest.raises(grpc.aio.AioRpcError):
        await call

    # With the switch dead, its store holds the intent: the REVERSAL item, not yet due.
    waiting = await world.item_of(auth.transaction_id, dead=False)
    assert waiting is not None and waiting["kind"] == "REVERSAL" and waiting["attempts"] == 0

    await world.set_issuer_faults(ISSUER)  # the issuer answers again
    await world.start(switch)  # same store, same topology
    assert await until(lambda: _reversed(world, auth.transaction_id), timeout=40)
    assert (await books.hold(ISSUER, auth.rrn)).state == RELEASED
    after = await books.account(ISSUER, "A-1001")
    assert (after.balance, after.held) == (before.balance, before.held)
    assert await world.item_of(auth.transaction_id, dead=False) is None
    # The recovered void counts in the terminal's batch, as a live void would.
    async with open_store(world.stack.store_url) as store:
        no = await store.open_batch_no(pos.terminal_id, time.time())
        items = await store.batch_items(pos.terminal_id, no)
    assert [(i.kind, i.amount_minor) for i in items if i.transaction_id == auth.transaction_id] == [
        (ItemKind.VOID, 5200)
    ]
    # A new void is refused: nothing is left to void, and nothing is sent.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pos.void(auth.transaction_id)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def _reversed(world, tx_id: str) -> bool:
    return await tx_state(world, tx_id) == REVERSED


def _issuer_refused_reversal(world, rrn: str) -> bool:
    """bank-a's log shows it judged the reversal of ``rrn`` and refused it (12) (its answer
    is then held: drop_response_rate = 1)."""
    path = world.stack.run_dir / f"{ISSUER}.log"
    if not path.exists():
        return False
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line[line.index("{") :])
        except ValueError:
            continue
        if entry.get("event") == "reverse" and entry.get("rrn") == rrn:
            if entry.get("outcome") == "INVALID_TRANSACTION":
                return True
    return False


async def _refused_in_log(world, rrn: str) -> bool:
    return await asyncio.to_thread(_issuer_refused_reversal, world, rrn)


async def test_kill_9_with_the_issuers_refusal_of_a_void_in_flight_leaves_the_sale(world):
    pos, books = world.pos, world.books
    switch = world.stack.topology.switch.id
    auth = await pos.pay(VISA, 5300)
    assert code(auth) == "00"

    await world.set_issuer_faults(ISSUER, drop_response_rate=1.0)
    assert await until(lambda: _issuer_acts(world), timeout=30, every=0.2)
    # The capture reaches the issuer, which posts it; its answer is dropped: 91 at the switch,
    # the sale still APPROVED there.
    captured = await pos.capture(auth.transaction_id, 5300)
    assert code(captured) == "91", captured.message
    assert (await books.hold(ISSUER, auth.rrn)).state == POSTED
    assert (await pos.get(auth.transaction_id)).state == APPROVED

    void = pos.void_request(auth.transaction_id)
    call = asyncio.ensure_future(pos.stub.Void(void, timeout=3.0))
    # The issuer refused the reversal (captured) and holds its answer: kill the switch now.
    assert await until(lambda: _refused_in_log(world, auth.rrn), timeout=2.5, every=0.02)
    assert not call.done()
    await world.kill(switch)
    with pytest.raises(grpc.aio.AioRpcError):
        await call
    waiting = await world.item_of(auth.transaction_id, dead=False)
    assert waiting is not None and waiting["kind"] == "REVERSAL"

    await world.set_issuer_faults(ISSUER)
    await world.start(switch)

    async def item_finished() -> bool:
        return await world.item_of(auth.transaction_id, dead=False) is None

    assert await until(item_finished, timeout=40, every=0.3)
    assert await world.item_of(auth.transaction_id, dead=True) is None  # no dead letter
    assert (await pos.get(auth.transaction_id)).state == APPROVED  # the void was refused
    assert (await books.hold(ISSUER, auth.rrn)).state == POSTED
    # The terminal retries its capture: the issuer's stored 00, and the sale is CAPTURED.
    again = await pos.capture(auth.transaction_id, 5300)
    assert code(again) == "00", again.message
    assert again.transaction.state == terminal_pb2.TRANSACTION_STATE_CAPTURED


async def _restart_armed(world, node_id: str, crash_at: str | None) -> None:
    world.stack.set_env(CRASH_AT_ENV, crash_at)
    try:
        await world.start(node_id)
    finally:
        world.stack.set_env(CRASH_AT_ENV, None)


async def test_kill_9_between_capture_or_refund_and_its_batch_join_leaves_it_to_the_sweep(world):
    """The switch dies right after a capture's CAPTURED (then a refund's APPROVED) is durable and
    before its batch join (crash points ``capture.captured`` and ``refund.approved``). The mark
    each wrote before anything left (``switch.backoffice.batches.join.intend``) is what the
    cut-off's sweep reads: both land in the terminal's open batch and are cleared like any other
    (fault seed 7 on Cassandra: such a capture was in no batch, MISSING_AT_ACQUIRER)."""
    pos = world.pos
    switch = world.stack.topology.switch.id
    sale = await pos.pay(VISA, 4100)
    assert code(sale) == "00"

    await _restart_armed(world, switch, "capture.captured:1")
    with pytest.raises(grpc.aio.AioRpcError):
        await pos.capture(sale.transaction_id)
    await _restart_armed(world, switch, "refund.approved:1")
    with pytest.raises(grpc.aio.AioRpcError):
        await pos.refund(sale.transaction_id, 1000)
    await _restart_armed(world, switch, None)

    async with open_store(world.stack.store_url) as store:
        assert (await store.get_transaction(sale.transaction_id)).state is TxState.CAPTURED
        marks = {m.kind: m.transaction_id for m in await store.unbatched(100)}
        assert marks.keys() == {ItemKind.SALE, ItemKind.REFUND}
        assert marks[ItemKind.SALE] == sale.transaction_id
        now = time.time()
        assert await join_unbatched(store, now) == 2
        no = await store.open_batch_no(pos.terminal_id, now)
        items = {
            (i.transaction_id, i.kind, i.amount_minor)
            for i in await store.batch_items(pos.terminal_id, no)
        }
        assert await store.unbatched(100) == []
    assert {
        (sale.transaction_id, ItemKind.SALE, 4100),
        (marks[ItemKind.REFUND], ItemKind.REFUND, 1000),
    } <= items
