"""Contract: an item written as an intent (due later) and settled by its writer, the same on
every backend. A void writes its REVERSAL item due after its deadline and settles it once it
has the issuer's answer: a settled item is done (never sent, not listed), an item a worker
holds is left to that worker, and enqueueing again re-arms a settled one."""

import random

from storekit import NOW

from switch.domain.saf import SafKind, new_item, settled, take_lease


def _tx() -> str:
    return f"tx-{random.getrandbits(48):012x}"


async def test_an_intent_is_not_due_before_its_time_and_settles_done(store):
    item = await store.saf_put(new_item(SafKind.REVERSAL, _tx(), NOW).copy(next_attempt_at=NOW + 3))
    assert [i.id for i in await store.saf_list(dead=False)] == [item.id]
    assert await store.saf_list(dead=False, due_before=NOW + 1) == []
    assert await store.saf_update(item.id, take_lease("w", NOW + 10, NOW + 1)) is None  # not due
    done = await store.saf_update(item.id, settled(NOW + 1))
    assert done.done and done.attempts == 0 and not done.dead
    assert await store.saf_list(dead=False) == []
    assert await store.saf_update(item.id, settled(NOW + 2)) is None  # already done
    again = await store.saf_put(new_item(SafKind.REVERSAL, item.transaction_id, NOW + 5))
    assert again.live and again.next_attempt_at == NOW + 5  # a new message is owed


async def test_settle_leaves_a_leased_item_to_its_worker(store):
    item = await store.saf_put(new_item(SafKind.REVERSAL, _tx(), NOW))
    assert await store.saf_update(item.id, take_lease("w", NOW + 10, NOW)) is not None
    assert await store.saf_update(item.id, settled(NOW + 1)) is None
    assert (await store.saf_get(item.id)).live
    # Once the lease has lapsed (its holder died), settling works.
    assert (await store.saf_update(item.id, settled(NOW + 11))).done
