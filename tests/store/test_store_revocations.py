"""Contract: terminal revocations, shared by every switch process on the store."""

import pytest

from switch.domain.revocations import Revocation


async def test_nothing_is_revoked_in_a_new_store(store):
    assert await store.revoked_terminals() == []


async def test_revoke_is_listed_and_seen_by_another_process(store, open_more):
    other = await open_more()
    got = await store.revoke_terminal("T-0002", "stolen", now=1000.0)
    assert got == Revocation("T-0002", "stolen", 1000.0)
    assert await other.revoked_terminals() == [Revocation("T-0002", "stolen", 1000.0)]


async def test_revoking_again_replaces_reason_and_time(store):
    await store.revoke_terminal("T-0002", "lost", now=1000.0)
    await store.revoke_terminal("T-0002", "stolen", now=2000.0)
    assert await store.revoked_terminals() == [Revocation("T-0002", "stolen", 2000.0)]


async def test_reinstate_removes_only_that_terminal(store, open_more):
    other = await open_more()
    await store.revoke_terminal("T-0001", "a", now=1.0)
    await store.revoke_terminal("T-0002", "b", now=2.0)
    assert await other.reinstate_terminal("T-0001") is True
    assert await store.revoked_terminals() == [Revocation("T-0002", "b", 2.0)]
    assert await store.reinstate_terminal("T-0001") is False  # already reinstated


async def test_revocations_survive_reopening(store_url):
    from switch.store import open_store

    first = open_store(store_url)
    await first.open()
    await first.revoke_terminal("T-0003", "fraud", now=5.0)
    await first.close()
    again = open_store(store_url)
    await again.open()
    try:
        assert [r.terminal_id for r in await again.revoked_terminals()] == ["T-0003"]
    finally:
        await again.close()


async def test_an_empty_terminal_id_is_refused(store):
    with pytest.raises(ValueError):
        await store.revoke_terminal("", "x", now=1.0)
