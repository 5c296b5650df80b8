"""Contract: the composite writes of one authorization ("receive + intent", "record + answer").

Each test runs on every backend twice: with the backend's own methods ("native": one SQLite
transaction) and with ``Store``'s defaults that call the primitives in order ("defaults": what
a backend without overrides, e.g. Cassandra, runs). Both must meet the same contract.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import AsyncIterator

import pytest
from storekit import NOW, new_tx

from switch.domain.errors import NotFound, StoreError
from switch.domain.idempotency import Answer, IdemStatus
from switch.domain.risk import MINUTE, Observation, Observing, Tally
from switch.domain.transactions import (
    CasFailed,
    Changes,
    DuplicateTransmission,
    IllegalTransition,
    ReceivedOnly,
    Recorded,
    TxState,
)
from switch.domain.vault import VaultWrite
from switch.store.base import Store

TTL = 86_400.0
LATER = NOW + 0.5
ANSWER = b"\x08\x01\x12\x06answer" * 10


@pytest.fixture(params=["native", "defaults"])
async def cstore(request: pytest.FixtureRequest, store: Store) -> AsyncIterator[Store]:
    if request.param == "defaults":
        store.receive_with_intent = types.MethodType(Store.receive_with_intent, store)
        store.record_with_answer = types.MethodType(Store.record_with_answer, store)
    yield store


async def _claim(store: Store, key: str) -> None:
    assert (await store.claim_idempotency("T0001", key, "authorize", "fp", TTL, NOW)).claimed


def _vault(card: str, version: int = 1) -> VaultWrite:
    return VaultWrite(card * 64, b"sealed-" + card.encode(), version)


async def test_receive_with_intent_writes_everything_and_moves_to_pending(cstore: Store) -> None:
    tx = new_tx(card_token="a" * 64)
    await _claim(cstore, tx.idempotency_key)
    out = await cstore.receive_with_intent(
        tx,
        vault=_vault("a"),
        attach=("T0001", tx.idempotency_key),
        acquirer_id="ACQ1",
        now=LATER,
    )
    expected = tx.copy(state=TxState.PENDING, acquirer_id="ACQ1", updated_at=LATER, version=2)
    assert out == expected
    assert await cstore.get_transaction(tx.id) == expected
    record = await cstore.get_idempotency("T0001", tx.idempotency_key, NOW)
    assert (record.status, record.transaction_id) == (IdemStatus.IN_FLIGHT, tx.id)
    entry = await cstore.get_vault_entry("a" * 64)
    assert (entry.blob, entry.key_version) == (b"sealed-a", 1)


async def test_receive_without_key_vault_or_route_stays_received(cstore: Store) -> None:
    """No route (acquirer ""): the row is recorded RECEIVED, then declined with the answer."""
    tx = new_tx()
    await _claim(cstore, tx.idempotency_key)
    out = await cstore.receive_with_intent(tx, vault=None, attach=None, acquirer_id="", now=LATER)
    assert out == tx and await cstore.get_transaction(tx.id) == tx
    record = await cstore.get_idempotency("T0001", tx.idempotency_key, NOW)
    assert record.transaction_id == ""  # not asked to attach
    done = await cstore.record_with_answer(
        tx.id,
        TxState.RECEIVED,
        TxState.DECLINED,
        Changes(response_code="12", updated_at=LATER),
        Answer("T0001", tx.idempotency_key, ANSWER),
    )
    assert done.answered and done.tx.state is TxState.DECLINED and done.tx.version == 2


async def test_duplicate_transmission_leaves_no_row_no_attachment_no_transition(
    cstore: Store,
) -> None:
    """Only the vault entry of the duplicate's card is kept, on every backend: it is keyed by
    the card (not the transaction), written first and idempotent, so it is harmless."""
    first = new_tx()
    await cstore.insert_transaction(first)
    again = new_tx(stan=first.stan, card_token="b" * 64)
    await _claim(cstore, again.idempotency_key)
    with pytest.raises(DuplicateTransmission) as info:
        await cstore.receive_with_intent(
            again,
            vault=_vault("b"),
            attach=("T0001", again.idempotency_key),
            acquirer_id="ACQ1",
            now=LATER,
        )
    assert info.value.existing_id == first.id
    assert await cstore.get_transaction(again.id) is None
    assert await cstore.get_transaction(first.id) == first  # not moved to PENDING
    record = await cstore.get_idempotency("T0001", again.idempotency_key, NOW)
    assert (record.status, record.transaction_id) == (IdemStatus.IN_FLIGHT, "")
    entry = await cstore.get_vault_entry("b" * 64)
    assert entry is not None and entry.key_version == 1


async def test_failure_after_insert_is_all_or_nothing_or_says_received_only(
    cstore: Store,
) -> None:
    """Attaching to a key that does not exist fails: a single-transaction backend writes
    nothing; the step-by-step default raises ReceivedOnly naming the RECEIVED row it left."""
    tx = new_tx()
    with pytest.raises(StoreError) as info:
        await cstore.receive_with_intent(
            tx, vault=None, attach=("T0001", "never-claimed"), acquirer_id="ACQ1", now=LATER
        )
    stored = await cstore.get_transaction(tx.id)
    if isinstance(info.value, ReceivedOnly):
        assert info.value.tx == tx and stored == tx
    else:
        assert isinstance(info.value, NotFound) and stored is None


async def test_receive_refuses_a_row_that_is_not_new(cstore: Store) -> None:
    tx = new_tx(state=TxState.PENDING)
    with pytest.raises(ValueError):
        await cstore.receive_with_intent(tx, vault=None, attach=None, acquirer_id="A", now=LATER)
    with pytest.raises(ValueError):
        await cstore.receive_with_intent(
            new_tx(amount_minor=1.5), vault=None, attach=None, acquirer_id="A", now=LATER
        )
    assert await cstore.get_transaction(tx.id) is None


async def _pending(store: Store) -> tuple[str, str]:
    tx = new_tx()
    await _claim(store, tx.idempotency_key)
    await store.receive_with_intent(
        tx, vault=None, attach=("T0001", tx.idempotency_key), acquirer_id="ACQ1", now=NOW
    )
    return tx.id, tx.idempotency_key


async def test_record_with_answer_records_and_completes_the_key(cstore: Store) -> None:
    tx_id, key = await _pending(cstore)
    changes = Changes(response_code="00", auth_code="A1B2C3", updated_at=LATER)
    done = await cstore.record_with_answer(
        tx_id, TxState.PENDING, TxState.APPROVED, changes, Answer("T0001", key, ANSWER)
    )
    assert isinstance(done, Recorded) and done.answered
    assert (done.tx.state, done.tx.auth_code, done.tx.version) == (TxState.APPROVED, "A1B2C3", 3)
    assert await cstore.get_transaction(tx_id) == done.tx
    replay = await cstore.claim_idempotency("T0001", key, "authorize", "fp", TTL, NOW + 1)
    assert not replay.claimed
    r = replay.record
    assert (r.status, r.response, r.transaction_id) == (IdemStatus.COMPLETED, ANSWER, tx_id)


async def test_cas_refusal_leaves_the_key_uncompleted(cstore: Store) -> None:
    """Someone else moved the row first (e.g. recovery): nothing is written, the key is not
    completed (no answer replays an outcome that is not the stored one)."""
    tx_id, key = await _pending(cstore)
    moved = await cstore.transition(
        tx_id, TxState.PENDING, TxState.UNKNOWN, Changes(response_code="91")
    )
    with pytest.raises(CasFailed) as info:
        await cstore.record_with_answer(
            tx_id,
            TxState.PENDING,
            TxState.APPROVED,
            Changes(response_code="00", auth_code="X"),
            Answer("T0001", key, ANSWER),
        )
    assert info.value.current == moved
    assert await cstore.get_transaction(tx_id) == moved
    record = await cstore.get_idempotency("T0001", key, NOW)
    assert (record.status, record.response, record.transaction_id) == (
        IdemStatus.IN_FLIGHT,
        b"",
        tx_id,
    )


async def test_illegal_transition_or_unknown_row_leaves_the_key_uncompleted(cstore: Store) -> None:
    tx_id, key = await _pending(cstore)
    answer = Answer("T0001", key, ANSWER)
    with pytest.raises(IllegalTransition):
        await cstore.record_with_answer(tx_id, TxState.PENDING, TxState.SETTLED, Changes(), answer)
    with pytest.raises(NotFound):
        await cstore.record_with_answer(
            "no-such-tx", TxState.PENDING, TxState.DECLINED, Changes(response_code="05"), answer
        )
    record = await cstore.get_idempotency("T0001", key, NOW)
    assert record.status is IdemStatus.IN_FLIGHT and record.response == b""
    assert (await cstore.get_transaction(tx_id)).state is TxState.PENDING


async def test_a_missing_key_never_undoes_the_recorded_outcome(cstore: Store) -> None:
    """The outcome stands (an approval must be in the store) even when the key is gone."""
    tx_id, key = await _pending(cstore)
    await cstore.release_idempotency("T0001", key)
    done = await cstore.record_with_answer(
        tx_id,
        TxState.PENDING,
        TxState.APPROVED,
        Changes(response_code="00", auth_code="A1"),
        Answer("T0001", key, ANSWER),
    )
    assert not done.answered and done.tx.state is TxState.APPROVED
    assert (await cstore.get_transaction(tx_id)).state is TxState.APPROVED
    assert await cstore.get_idempotency("T0001", key, NOW) is None


async def test_record_without_answer_is_the_transition_alone(cstore: Store) -> None:
    tx_id, key = await _pending(cstore)
    done = await cstore.record_with_answer(
        tx_id, TxState.PENDING, TxState.DECLINED, Changes(response_code="05"), None
    )
    assert done.tx.state is TxState.DECLINED and not done.answered
    assert (await cstore.get_idempotency("T0001", key, NOW)).status is IdemStatus.IN_FLIGHT


def _seen(card: str, amount: int, slice_s: float = 5.0) -> Observing:
    subject = "c:" + card * 64
    return Observing(
        Observation(
            subjects=(subject,),
            seen_of=(),
            tallies=(Tally(subject, "n", 1), Tally(subject, "amt.EUR", amount)),
        ),
        slice_s,
    )


def _count(seen: Observing, card: str) -> int:
    assert seen.history is not None and not seen.failed
    buckets = seen.history.buckets["c:" + card * 64]
    return sum(b.value for b in buckets if b.gran == MINUTE and b.metric == "n")


async def test_an_intent_carries_its_risk_observation(cstore: Store) -> None:
    """The risk observation rides in the intent's write: each intent sees what the ones
    before it added, then adds its own."""
    seen = []
    for _ in range(3):
        tx = new_tx(card_token="c" * 64)
        s = _seen("c", 100)
        await cstore.receive_with_intent(
            tx, vault=None, attach=None, acquirer_id="ACQ1", now=LATER, risk=s
        )
        seen.append(_count(s, "c"))
    assert seen == [0, 1, 2]


async def test_a_refused_intent_observes_nothing(cstore: Store) -> None:
    """A duplicate transmission (and so a replay) is refused before it can count towards any
    velocity: the next observation does not see it."""
    first = new_tx()
    await cstore.insert_transaction(first)
    again = new_tx(stan=first.stan, card_token="d" * 64)
    with pytest.raises(DuplicateTransmission):
        await cstore.receive_with_intent(
            again, vault=None, attach=None, acquirer_id="ACQ1", now=LATER, risk=_seen("d", 1)
        )
    after = _seen("d", 1)
    await cstore.receive_with_intent(
        new_tx(card_token="d" * 64), vault=None, attach=None, acquirer_id="A", now=LATER, risk=after
    )
    assert _count(after, "d") == 0


async def test_a_stalled_observation_ends_at_its_slice_and_the_intent_stands(cstore: Store) -> None:
    """Where the observation is a call of its own (the step-by-step default, Cassandra), a
    store that does not answer it within the slice leaves ``failed`` = "timeout" for the
    fallback, and the intent is durable all the same. SQLite makes it inside the intent's
    transaction (no call to stall): it is made."""
    called = []

    async def stalled(_obs: Observation, _now: float) -> None:
        called.append(True)
        await asyncio.Event().wait()  # never set: only the slice ends it

    cstore.risk_observe = stalled  # type: ignore[method-assign]
    tx = new_tx(card_token="e" * 64)
    s = _seen("e", 1, slice_s=0.05)
    out = await cstore.receive_with_intent(
        tx, vault=None, attach=None, acquirer_id="ACQ1", now=LATER, risk=s
    )
    assert out.state is TxState.PENDING
    assert (await cstore.get_transaction(tx.id)).state is TxState.PENDING
    if called:
        assert (s.failed, s.history) == ("timeout", None)
    else:
        assert _count(s, "e") == 0
