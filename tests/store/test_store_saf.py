"""Contract: the store-and-forward queue (``SafStore``), the same on every backend.

Clock values are passed in (``now``), never slept on; the pure steps of ``saf_base`` are what the
queue applies, so these tests exercise exactly the compare-and-sets the workers make."""

import asyncio
import random

import pytest
from storekit import NOW

from switch.domain.saf import (
    Backoff,
    SafKind,
    after_attempt,
    new_item,
    release,
    replayed,
    take_lease,
)

BACKOFF = Backoff(max_attempts=3, max_age_s=3600, base_delay_s=1.0, max_delay_s=8.0)


def _tx() -> str:
    return f"tx-{random.getrandbits(48):012x}"


async def test_enqueue_is_idempotent_on_kind_and_transaction(store, open_more):
    other = await open_more()
    tx = _tx()
    first = await store.saf_put(new_item(SafKind.REVERSAL, tx, NOW))
    again = await other.saf_put(new_item(SafKind.REVERSAL, tx, NOW + 5))
    assert again.id == first.id and again.created_at == NOW
    advice = await store.saf_put(new_item(SafKind.ADVICE, tx, NOW))
    assert advice.id != first.id
    live = await store.saf_list(dead=False)
    assert sorted(i.id for i in live) == sorted([first.id, advice.id])
    assert (await other.saf_get(first.id)).transaction_id == tx


async def test_concurrent_enqueues_make_one_item(store, open_more):
    stores = [store, await open_more(), await open_more()]
    tx = _tx()
    got = await asyncio.gather(
        *(stores[i % 3].saf_put(new_item(SafKind.REVERSAL, tx, NOW + i)) for i in range(6))
    )
    assert len({g.id for g in got}) == 1
    assert len({g.created_at for g in got}) == 1  # every caller sees the one stored item
    assert len(await store.saf_list(dead=False)) == 1


async def test_lease_is_exclusive_between_two_owners(store, open_more):
    other = await open_more()
    item = await store.saf_put(new_item(SafKind.REVERSAL, _tx(), NOW))
    a, b = await asyncio.gather(
        store.saf_update(item.id, take_lease("a", NOW + 10, NOW)),
        other.saf_update(item.id, take_lease("b", NOW + 10, NOW)),
    )
    winners = [x for x in (a, b) if x is not None]
    assert len(winners) == 1
    holder = winners[0].leased_by
    loser = "b" if holder == "a" else "a"
    assert await other.saf_update(item.id, take_lease(loser, NOW + 10, NOW + 1)) is None
    # The loser cannot record an attempt on the holder's lease either.
    rng = random.Random(1)
    assert (
        await store.saf_update(item.id, after_attempt(loser, True, "", NOW + 1, BACKOFF, rng))
        is None
    )
    assert (await store.saf_get(item.id)).leased_by == holder


async def test_an_expired_lease_is_taken_over(store, open_more):
    other = await open_more()
    item = await store.saf_put(new_item(SafKind.REVERSAL, _tx(), NOW))
    assert await store.saf_update(item.id, take_lease("dead", NOW + 10, NOW))
    assert await other.saf_update(item.id, take_lease("heir", NOW + 30, NOW + 9)) is None
    taken = await other.saf_update(item.id, take_lease("heir", NOW + 30, NOW + 10))
    assert taken is not None and taken.leased_by == "heir"
    # The dead holder, back, cannot record over the heir's lease.
    rng = random.Random(1)
    late = after_attempt("dead", True, "", NOW + 11, BACKOFF, rng)
    assert await store.saf_update(item.id, late) is None
    assert await other.saf_update(item.id, release("heir"))
    assert (await store.saf_get(item.id)).leased_by == ""


async def test_a_failed_attempt_is_scheduled_with_backoff(store):
    item = await store.saf_put(new_item(SafKind.REVERSAL, _tx(), NOW))
    assert await store.saf_update(item.id, take_lease("w", NOW + 10, NOW))
    rng = random.Random(7)
    failed = await store.saf_update(
        item.id, after_attempt("w", False, "UNAVAILABLE", NOW, BACKOFF, rng)
    )
    assert failed.attempts == 1 and not failed.dead and failed.leased_by == ""
    assert failed.last_error == "UNAVAILABLE"
    assert NOW <= failed.next_attempt_at <= NOW + BACKOFF.base_delay_s
    # Not due before its time: neither listed as due nor leasable.
    early = failed.next_attempt_at - 0.001
    if early >= NOW:
        assert await store.saf_list(dead=False, due_before=early) == []
        assert await store.saf_update(item.id, take_lease("w", NOW + 10, early)) is None
    due = await store.saf_list(dead=False, due_before=failed.next_attempt_at)
    assert [i.id for i in due] == [item.id]
    # The second failure waits up to twice as long (full jitter: any value below the cap).
    t = failed.next_attempt_at
    assert await store.saf_update(item.id, take_lease("w", t + 10, t))
    second = await store.saf_update(item.id, after_attempt("w", False, "x", t, BACKOFF, rng))
    assert second.attempts == 2
    assert t <= second.next_attempt_at <= t + 2 * BACKOFF.base_delay_s


async def test_a_delivered_item_leaves_the_queue_and_is_rearmed_by_a_new_enqueue(store):
    tx = _tx()
    item = await store.saf_put(new_item(SafKind.REVERSAL, tx, NOW))
    assert await store.saf_update(item.id, take_lease("w", NOW + 10, NOW))
    rng = random.Random(1)
    done = await store.saf_update(item.id, after_attempt("w", True, "", NOW, BACKOFF, rng))
    assert done.done and done.attempts == 1
    assert await store.saf_list(dead=False) == []
    assert await store.saf_depths() == {}
    again = await store.saf_put(new_item(SafKind.REVERSAL, tx, NOW + 100))
    assert again.live and again.attempts == 0 and again.next_attempt_at == NOW + 100
    assert [i.id for i in await store.saf_list(dead=False)] == [item.id]


async def test_max_attempts_dead_letters_and_replay_revives(store, open_more):
    other = await open_more()
    item = await store.saf_put(new_item(SafKind.REVERSAL, _tx(), NOW))
    rng = random.Random(3)
    t = NOW
    for n in range(BACKOFF.max_attempts):
        assert await store.saf_update(item.id, take_lease("w", t + 10, t)), n
        item = await store.saf_update(
            item.id, after_attempt("w", False, "refused", t, BACKOFF, rng)
        )
        t = item.next_attempt_at
    assert item.dead and item.attempts == BACKOFF.max_attempts
    assert await store.saf_list(dead=False) == []
    assert [i.id for i in await other.saf_list(dead=True)] == [item.id]
    assert await store.saf_depths() == {(SafKind.REVERSAL.value, True): 1}
    # A dead letter is not leased, and a new enqueue does not revive it: an operator does.
    assert await store.saf_update(item.id, take_lease("w", t + 100, t + 50)) is None
    assert (await store.saf_put(new_item(SafKind.REVERSAL, item.transaction_id, t))).dead
    back = await other.saf_update(item.id, replayed(t + 60))
    assert back.live and back.attempts == 0 and back.next_attempt_at == t + 60
    assert await store.saf_list(dead=True) == []
    assert [i.id for i in await store.saf_list(dead=False, due_before=t + 60)] == [item.id]
    with pytest.raises(ValueError):
        await store.saf_update(item.id, replayed(t + 61))  # not dead any more
    assert (await store.saf_get(item.id)).live  # the refused replay wrote nothing


async def test_max_age_dead_letters_before_max_attempts(store):
    item = await store.saf_put(new_item(SafKind.ADVICE, _tx(), NOW))
    t = NOW + BACKOFF.max_age_s
    assert await store.saf_update(item.id, take_lease("w", t + 10, t))
    rng = random.Random(1)
    dead = await store.saf_update(item.id, after_attempt("w", False, "late", t, BACKOFF, rng))
    assert dead.dead and dead.attempts == 1


async def test_unknown_items(store):
    assert await store.saf_get("REVERSAL:nope") is None
    with pytest.raises(KeyError):
        await store.saf_update("REVERSAL:nope", replayed(NOW))
    with pytest.raises(ValueError):
        new_item(SafKind.REVERSAL, "", NOW)
