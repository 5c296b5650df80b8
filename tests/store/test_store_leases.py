"""Contract: leases, so that work meant for one switch process at a time runs in one."""

import asyncio
import time

LEASE = "recovery"


async def test_first_owner_takes_and_renews(store):
    assert await store.acquire_lease(LEASE, "a", 30, now=1000.0)
    assert await store.acquire_lease(LEASE, "a", 30, now=1010.0)  # renewed by its owner


async def test_another_owner_is_refused_while_held(store, open_more):
    other = await open_more()
    assert await store.acquire_lease(LEASE, "a", 30, now=1000.0)
    assert not await other.acquire_lease(LEASE, "b", 30, now=1001.0)
    assert await store.acquire_lease(LEASE, "a", 30, now=1002.0)  # still a's


async def test_leases_are_independent_by_name(store):
    assert await store.acquire_lease("one", "a", 30, now=1000.0)
    assert await store.acquire_lease("two", "b", 30, now=1000.0)


async def test_concurrent_takers_exactly_one_wins(store, open_more):
    stores = [store, await open_more(), await open_more()]
    owners = [f"owner-{i}" for i in range(9)]
    won = await asyncio.gather(
        *(stores[i % 3].acquire_lease(LEASE, o, 30, now=1000.0) for i, o in enumerate(owners))
    )
    assert sum(won) == 1


async def test_an_expired_lease_can_be_taken_over(store, open_more):
    """The owner died: once its TTL has passed (real time: Cassandra expires by TTL), another
    process takes the lease. Polled on the condition, bounded."""

    other = await open_more()
    assert await store.acquire_lease(LEASE, "dead", 1, now=time.time())
    assert not await other.acquire_lease(LEASE, "heir", 30, now=time.time())
    deadline = time.monotonic() + 10
    taken = False
    while not taken and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        taken = await other.acquire_lease(LEASE, "heir", 30, now=time.time())
    assert taken
    assert not await store.acquire_lease(LEASE, "dead", 1, now=time.time())
