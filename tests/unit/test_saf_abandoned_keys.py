"""Idempotency keys left IN_FLIGHT by a dead request (real SQLite store): an authorization key
without a transaction, or with one still RECEIVED (nothing was sent), is completed with 96 once
abandoned, so retries stop waiting; a key whose transaction is PENDING is left to the recovery
sweep (which answers 91); a recorded outcome is replayed; a young key still waits.
Capture, void and refund keys are completed from their transaction's state, with the answer
the live path gives for it; a void whose intent item still waits is left to the item."""

import time

import grpc
import pytest

from payswitch.v1 import common_pb2, terminal_pb2
from switch.core.budget import Budget
from switch.core.idempotency import IdempotencyGuard, Replay
from switch.domain.idempotency import IdemStatus
from switch.domain.saf import SafKind, new_item
from switch.domain.transactions import Changes, TxState, TxType
from switch.store.sqlite.store import SqliteStore
from switch.wire.errors import ApiError
from tests.store.storekit import new_tx


@pytest.fixture
async def store(tmp_path):
    s = SqliteStore(tmp_path / "switch.db", synchronous="normal")
    await s.open()
    yield s
    await s.close()


async def _claim(store, key, operation="authorize", age_s=0.0):
    claim = await store.claim_idempotency("T-1", key, operation, "fp", 86400, time.time() - age_s)
    assert claim.claimed


def _budget(seconds=0.3):
    return Budget.start(seconds, 2.0, 0.05)


async def test_abandoned_authorization_key_is_answered_96_for_every_retry(store):
    await _claim(store, "k1", age_s=120)
    guard = IdempotencyGuard(store, abandoned_after_s=60)
    first = await guard.claim("T-1", "k1", "authorize", "fp", _budget())
    again = await IdempotencyGuard(store).claim("T-1", "k1", "authorize", "fp", _budget())
    assert isinstance(first, Replay) and isinstance(again, Replay)
    answer = terminal_pb2.AuthorizeResponse.FromString(first.response)
    assert answer.response_code == common_pb2.RESPONSE_CODE_SYSTEM_MALFUNCTION
    assert again.response == first.response
    record = await store.get_idempotency("T-1", "k1", time.time())
    assert record.status is IdemStatus.COMPLETED


async def _aborted(guard, key, operation="authorize"):
    with pytest.raises(ApiError) as err:
        await guard.claim("T-1", key, operation, "fp", _budget())
    assert err.value.code == grpc.StatusCode.ABORTED


async def test_young_or_attached_or_other_keys_still_wait(store):
    guard = IdempotencyGuard(store, abandoned_after_s=60)
    await _claim(store, "young", age_s=5)
    await _aborted(guard, "young")
    pending = await _tx_in(store, TxState.PENDING)
    await _claim(store, "attached", age_s=120)
    await store.attach_transaction("T-1", "attached", pending.id)  # recovery answers this one
    await _aborted(guard, "attached")
    await _claim(store, "young-void", operation="void", age_s=5)
    await _aborted(guard, "young-void", operation="void")
    for key in ("young", "attached", "young-void"):
        record = await store.get_idempotency("T-1", key, time.time())
        assert record.status is IdemStatus.IN_FLIGHT


_PATHS = {
    TxState.APPROVED: [TxState.PENDING, TxState.APPROVED],
    TxState.CAPTURED: [TxState.PENDING, TxState.APPROVED, TxState.CAPTURED],
    TxState.VOIDED: [TxState.PENDING, TxState.APPROVED, TxState.VOIDED],
    TxState.REVERSAL_PENDING: [TxState.PENDING, TxState.APPROVED, TxState.REVERSAL_PENDING],
    TxState.PENDING: [TxState.PENDING],
    TxState.DECLINED: [TxState.PENDING, TxState.DECLINED],
}


async def _tx_in(store, state, **fields):
    tx = new_tx(scheme="visa", **fields)
    await store.insert_transaction(tx)
    current = TxState.RECEIVED
    for nxt in _PATHS[state]:
        changes = Changes(response_code="00") if nxt is TxState.APPROVED else Changes()
        if nxt is TxState.DECLINED:
            changes = Changes(response_code="51")
        tx = await store.transition(tx.id, current, nxt, changes)
        current = nxt
    return tx


async def _abandoned(store, key, operation, tx=None):
    """A key of ``operation`` a dead request left IN_FLIGHT 120 s ago, ``tx`` attached."""
    await _claim(store, key, operation=operation, age_s=120)
    if tx is not None:
        await store.attach_transaction("T-1", key, tx.id)


_RESPONSES = {
    "capture": terminal_pb2.CaptureResponse,
    "void": terminal_pb2.VoidResponse,
    "refund": terminal_pb2.RefundResponse,
}
C = common_pb2


@pytest.mark.parametrize(
    ("operation", "state", "expected_code", "message"),
    [
        ("capture", TxState.CAPTURED, C.RESPONSE_CODE_APPROVED, ""),
        ("capture", TxState.APPROVED, C.RESPONSE_CODE_ISSUER_UNAVAILABLE, "retry the capture"),
        (
            "capture",
            TxState.VOIDED,
            C.RESPONSE_CODE_SYSTEM_MALFUNCTION,
            "without a recorded answer",
        ),
        ("void", TxState.VOIDED, C.RESPONSE_CODE_APPROVED, ""),
        ("void", TxState.REVERSAL_PENDING, C.RESPONSE_CODE_APPROVED, "reversal queued"),
        ("void", TxState.APPROVED, C.RESPONSE_CODE_SYSTEM_MALFUNCTION, "without effect"),
        ("refund", TxState.APPROVED, C.RESPONSE_CODE_APPROVED, ""),
        ("refund", TxState.DECLINED, C.RESPONSE_CODE_INSUFFICIENT_FUNDS, ""),
        ("refund", TxState.PENDING, C.RESPONSE_CODE_ISSUER_UNAVAILABLE, "no answer"),
    ],
)
async def test_follow_up_keys_are_answered_from_their_transaction(
    store, operation, state, expected_code, message
):
    kind = TxType.REFUND if operation == "refund" else TxType.AUTHORIZATION
    tx = await _tx_in(store, state, type=kind)
    key = f"{operation}-{state.value}"
    await _abandoned(store, key, operation, tx)
    guard = IdempotencyGuard(store, abandoned_after_s=60)
    first = await guard.claim("T-1", key, operation, "fp", _budget())
    again = await IdempotencyGuard(store).claim("T-1", key, operation, "fp", _budget())
    assert isinstance(first, Replay) and isinstance(again, Replay)
    assert again.response == first.response
    assert first.transaction_id == tx.id
    answer = _RESPONSES[operation].FromString(first.response)
    assert answer.response_code == expected_code
    assert message in answer.message
    assert (answer.transaction.transaction_id, answer.transaction.state) == (
        tx.id,
        terminal_pb2.TransactionState.Value(f"TRANSACTION_STATE_{state.value}"),
    )
    record = await store.get_idempotency("T-1", key, time.time())
    assert (record.status, record.transaction_id) == (IdemStatus.COMPLETED, tx.id)


@pytest.mark.parametrize("operation", ["capture", "void", "refund"])
async def test_follow_up_key_without_transaction_is_answered_96(store, operation):
    await _abandoned(store, f"bare-{operation}", operation)
    replay = await IdempotencyGuard(store, abandoned_after_s=60).claim(
        "T-1", f"bare-{operation}", operation, "fp", _budget()
    )
    answer = _RESPONSES[operation].FromString(replay.response)
    assert answer.response_code == C.RESPONSE_CODE_SYSTEM_MALFUNCTION
    assert "retry under a new idempotency key" in answer.message
    assert not answer.HasField("transaction") and replay.transaction_id == ""


async def test_void_with_its_intent_waiting_is_left_to_the_item(store):
    tx = await _tx_in(store, TxState.APPROVED)
    await store.saf_put(new_item(SafKind.REVERSAL, tx.id, time.time()))
    await _abandoned(store, "void-waiting", "void", tx)
    guard = IdempotencyGuard(store, abandoned_after_s=60)
    await _aborted(guard, "void-waiting", operation="void")
    record = await store.get_idempotency("T-1", "void-waiting", time.time())
    assert record.status is IdemStatus.IN_FLIGHT
    # The item reverses it (REVERSAL_PENDING -> ...): then the retry gets the void's 00.
    await store.transition(tx.id, TxState.APPROVED, TxState.REVERSAL_PENDING)
    replay = await guard.claim("T-1", "void-waiting", "void", "fp", _budget())
    answer = terminal_pb2.VoidResponse.FromString(replay.response)
    assert answer.response_code == C.RESPONSE_CODE_APPROVED
    assert answer.message == "void accepted; reversal queued"


async def _settle_authorization(store, key, tx):
    await _abandoned(store, key, "authorize", tx)
    guard = IdempotencyGuard(store, abandoned_after_s=60)
    first = await guard.claim("T-1", key, "authorize", "fp", _budget())
    again = await IdempotencyGuard(store).claim("T-1", key, "authorize", "fp", _budget())
    assert isinstance(first, Replay) and isinstance(again, Replay)
    assert again.response == first.response
    assert first.transaction_id == tx.id
    return terminal_pb2.AuthorizeResponse.FromString(first.response)


async def test_authorization_left_received_is_declined_96(store):
    # Died between writing the transaction and its intent (two writes on Cassandra): nothing
    # was sent, so the retry is told 96 and the row does not linger RECEIVED.
    tx = new_tx(scheme="visa")
    await store.insert_transaction(tx)
    answer = await _settle_authorization(store, "received", tx)
    assert answer.response_code == C.RESPONSE_CODE_SYSTEM_MALFUNCTION
    assert answer.transaction_id == tx.id and answer.rrn == tx.rrn
    after = await store.get_transaction(tx.id)
    assert after.state is TxState.DECLINED and after.response_code == "96"


async def test_authorization_with_a_recorded_outcome_replays_it(store):
    # Died between recording the outcome and completing the key: the outcome is the answer.
    tx = await _tx_in(store, TxState.DECLINED)
    answer = await _settle_authorization(store, "declined", tx)
    assert answer.response_code == C.RESPONSE_CODE_INSUFFICIENT_FUNDS
    approved = await _tx_in(store, TxState.APPROVED)
    answer = await _settle_authorization(store, "approved", approved)
    assert answer.response_code == C.RESPONSE_CODE_APPROVED
    assert (await store.get_transaction(approved.id)).state is TxState.APPROVED


async def test_recovery_declines_authorizations_a_dead_request_left_received(store):
    from switch.core.abandoned_keys import UNSENT_AFTER_S, decline_unsent

    now = time.time()
    old = now - UNSENT_AFTER_S - 10
    dead = new_tx(created_at=old, updated_at=old, deadline_at=old + 2.0)
    live = new_tx(created_at=now, updated_at=now, deadline_at=now + 2.0)
    refund = new_tx(type=TxType.REFUND, created_at=old, updated_at=old, deadline_at=old + 2.0)
    for tx in (dead, live, refund):
        await store.insert_transaction(tx)
    assert await decline_unsent(store, now) == 1
    after = await store.get_transaction(dead.id)
    assert after.state is TxState.DECLINED and after.response_code == "96"
    assert (await store.get_transaction(live.id)).state is TxState.RECEIVED
    assert (await store.get_transaction(refund.id)).state is TxState.RECEIVED  # its own sweep
    assert await decline_unsent(store, now) == 0  # nothing twice


async def test_an_abandoned_keys_answer_is_sealed_for_the_retry(store):
    """``once`` seals an answer settled for a dead request (never MAC'd) for the retry, which
    resends the same bytes and KSN."""
    await _abandoned(store, "sealed-void", "void")
    sealed: list = []

    async def seal(response) -> None:
        sealed.append(response.response_code)
        response.mac = b"\x01" * 16

    async def work():
        raise AssertionError("a settled key never runs the work again")

    guard = IdempotencyGuard(store, abandoned_after_s=60)
    kwargs = dict(
        scope="T-1",
        key="sealed-void",
        operation="void",
        fingerprint="fp",
        response_type=terminal_pb2.VoidResponse,
        work=work,
        seal=seal,
    )
    answer = await guard.once(budget=_budget(), **kwargs)
    assert answer.mac == b"\x01" * 16 and sealed == [C.RESPONSE_CODE_SYSTEM_MALFUNCTION]


async def test_a_caller_cancelled_mid_work_leaves_the_key_answered_not_held(store):
    """The terminal's RPC is cancelled (its deadline) while the void's work runs: the work
    finishes and keeps its answer under the key, so the retry replays it instead of waiting on
    a hold nobody will settle and being answered ABORTED (the fault campaign's seed 15)."""
    import asyncio

    started, release = asyncio.Event(), asyncio.Event()
    runs: list[str] = []

    async def work():
        started.set()
        await release.wait()  # the network call, the store writes
        runs.append("void")
        return terminal_pb2.VoidResponse(response_code=C.RESPONSE_CODE_APPROVED), "tx-1"

    guard = IdempotencyGuard(store, abandoned_after_s=60)
    kwargs = dict(
        scope="T-1",
        key="cancelled-void",
        operation="void",
        fingerprint="fp",
        response_type=terminal_pb2.VoidResponse,
        work=work,
    )
    first = asyncio.create_task(guard.once(budget=_budget(5.0), **kwargs))
    await started.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    release.set()
    retry = await guard.once(budget=_budget(5.0), **kwargs)
    assert retry.response_code == C.RESPONSE_CODE_APPROVED and runs == ["void"]
    record = await store.get_idempotency("T-1", "cancelled-void", time.time())
    assert (record.status, record.transaction_id) == (IdemStatus.COMPLETED, "tx-1")


async def test_a_stuck_holder_in_this_process_stops_blocking_retries(store, monkeypatch):
    """A request of this process that claimed its key and never settled it (stuck, or dropped
    without its answer: campaign seeds 3037 and 3042) is waited on only while young; past
    ``abandoned_after_s`` a retry asks the store, which settles the key with 96."""
    from types import SimpleNamespace

    from switch.core import idempotency
    from switch.core.idempotency import KeyHold

    guard = IdempotencyGuard(store, abandoned_after_s=60)
    hold = await guard.claim("T-1", "stuck", "authorize", "fp", _budget())
    assert isinstance(hold, KeyHold)  # never settled from here on
    await _aborted(guard, "stuck")  # young: the retry waits on the local holder, then ABORTED
    later = SimpleNamespace(
        time=lambda: time.time() + 120, monotonic=lambda: time.monotonic() + 120
    )
    monkeypatch.setattr(idempotency, "time", later)
    replay = await guard.claim("T-1", "stuck", "authorize", "fp", _budget())
    assert isinstance(replay, Replay)
    answer = terminal_pb2.AuthorizeResponse.FromString(replay.response)
    assert answer.response_code == common_pb2.RESPONSE_CODE_SYSTEM_MALFUNCTION
    again = await guard.claim("T-1", "stuck", "authorize", "fp", _budget())
    assert isinstance(again, Replay) and again.response == replay.response
    assert ("T-1", "stuck") not in guard._inflight  # the stuck holder's waiters were answered


async def test_an_abandoned_key_is_settled_by_a_retry_with_no_time_left(store):
    """A retry that reaches the key with its budget all but spent (a short deadline, a slow
    hop before the claim) still settles a key a dead request left: before, it was answered
    ABORTED before its first look, and so was every retry like it (campaign seed 3042)."""
    await _claim(store, "late", age_s=120)
    guard = IdempotencyGuard(store, abandoned_after_s=60)
    replay = await guard.claim("T-1", "late", "authorize", "fp", Budget.start(0.0, 2.0, 0.05))
    assert isinstance(replay, Replay)
    answer = terminal_pb2.AuthorizeResponse.FromString(replay.response)
    assert answer.response_code == common_pb2.RESPONSE_CODE_SYSTEM_MALFUNCTION
    record = await store.get_idempotency("T-1", "late", time.time())
    assert record.status is IdemStatus.COMPLETED
