"""TerminalRegistry: who may send what, and the revocation cache (injected clock, fake store)."""

from __future__ import annotations

import asyncio

import pytest

from payswitch.world.topology import load
from switch.core.registry import PermissionDenied, TerminalRegistry
from switch.domain.errors import StoreUnavailable
from switch.domain.revocations import Revocation
from switch.wire.errors import InvalidArgument, Unauthenticated, Unavailable

TOPOLOGY = load("topology/default.toml")


class FakeStore:
    """Revocations as another switch process would see them in a shared store."""

    def __init__(self) -> None:
        self.rows: dict[str, Revocation] = {}
        self.down = False
        self.reads = 0
        self.gate: asyncio.Event | None = None

    async def revoked_terminals(self) -> list[Revocation]:
        self.reads += 1
        snapshot = list(self.rows.values())  # what the store held when read
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise StoreUnavailable("down")
        return snapshot

    async def revoke_terminal(self, terminal_id, reason, now):
        self.rows[terminal_id] = Revocation(terminal_id, reason, now)
        return self.rows[terminal_id]

    async def reinstate_terminal(self, terminal_id):
        return self.rows.pop(terminal_id, None) is not None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def reg():
    store, clock = FakeStore(), Clock()
    registry = TerminalRegistry(TOPOLOGY, store, refresh_s=1.0, clock=clock)
    await registry.refresh()
    return registry, store, clock


def test_plaintext_mode_keeps_the_old_answers():
    r = TerminalRegistry(TOPOLOGY)
    assert r.admit("T-0001", None, tls=False).merchant.id == "M-GROCER"
    r.identity("T-0001").check_merchant("M-GROCER")
    with pytest.raises(InvalidArgument) as err:
        r.admit("T-9999", None, tls=False)
    assert err.value.field == "terminal_id"
    with pytest.raises(InvalidArgument) as err:
        r.identity("T-0001").check_merchant("M-FUEL")
    assert err.value.field == "merchant_id"


def test_with_tls_the_certificate_must_name_the_requests_terminal():
    r = TerminalRegistry(TOPOLOGY)
    r.admit("T-0001", "T-0001", tls=True)
    with pytest.raises(PermissionDenied):
        r.admit("T-0002", "T-0001", tls=True)  # A's certificate, B's id
    with pytest.raises(PermissionDenied):
        r.admit("T-0001", None, tls=True)  # probe certificate: no terminal identity
    with pytest.raises(PermissionDenied):
        r.admit("T-0001", "T-0042", tls=True)  # a certificate for a terminal not listed
    with pytest.raises(InvalidArgument):
        r.admit("T-9999", "T-0001", tls=True)  # unknown id in the request: bad input


async def test_a_revocation_in_the_store_applies_at_the_next_refresh(reg):
    registry, store, _ = reg
    registry.admit("T-0002", "T-0002", tls=True)
    await store.revoke_terminal("T-0002", "stolen", 1.0)  # by another switch process
    registry.admit("T-0002", "T-0002", tls=True)  # cached: until the refresh
    await registry.refresh()
    with pytest.raises(Unauthenticated, match="revoked"):
        registry.admit("T-0002", "T-0002", tls=True)
    with pytest.raises(Unauthenticated):
        registry.admit("T-0002", None, tls=False)  # in plaintext mode too
    registry.admit("T-0001", "T-0001", tls=True)  # others unaffected
    await store.reinstate_terminal("T-0002")
    await registry.refresh()
    registry.admit("T-0002", "T-0002", tls=True)


async def test_revoke_through_this_process_applies_at_once_and_is_stored(reg):
    registry, store, _ = reg
    await registry.revoke("T-0003", "fraud")
    assert "T-0003" in store.rows
    with pytest.raises(Unauthenticated):
        registry.admit("T-0003", None, tls=False)  # plaintext mode honours it too
    listed = {s.identity.terminal_id: s.revocation for s in registry.terminals()}
    assert listed["T-0003"].reason == "fraud" and listed["T-0001"] is None
    assert await registry.reinstate("T-0003") is True
    registry.admit("T-0003", None, tls=False)
    with pytest.raises(InvalidArgument):
        await registry.revoke("T-9999", "x")


async def test_the_hot_path_never_reads_the_store(reg):
    registry, store, _ = reg
    reads = store.reads
    for _ in range(100):
        registry.admit("T-0001", "T-0001", tls=True)
    assert store.reads == reads


async def test_a_refresh_that_started_before_a_local_revoke_does_not_undo_it(reg):
    registry, store, _ = reg
    store.gate = asyncio.Event()
    pending = asyncio.create_task(registry.refresh())
    await asyncio.sleep(0)  # the refresh has read the store (without T-0001) and waits
    store.gate, gate = None, store.gate
    await registry.revoke("T-0001", "lost")  # lands while the old read is still in flight
    gate.set()
    await pending
    with pytest.raises(Unauthenticated):
        registry.admit("T-0001", "T-0001", tls=True)


async def test_stale_revocations_fail_closed_and_recover(reg):
    registry, store, clock = reg
    store.down = True
    clock.now += registry.stale_after_s - 0.1
    with pytest.raises(StoreUnavailable):
        await registry.refresh()
    registry.admit("T-0001", "T-0001", tls=True)  # still inside the bound
    clock.now += 0.2
    with pytest.raises(Unavailable):
        registry.admit("T-0001", "T-0001", tls=True)
    store.down = False
    await registry.refresh()
    registry.admit("T-0001", "T-0001", tls=True)


async def test_never_loaded_is_refused():
    registry = TerminalRegistry(TOPOLOGY, FakeStore())
    with pytest.raises(Unavailable):
        registry.admit("T-0001", "T-0001", tls=True)


async def test_background_refresh_picks_up_revocations():
    store = FakeStore()
    registry = TerminalRegistry(TOPOLOGY, store, refresh_s=0.01)
    await registry.refresh()
    registry.start()
    try:
        await store.revoke_terminal("T-0002", "x", 1.0)
        deadline = asyncio.get_running_loop().time() + 5.0
        while asyncio.get_running_loop().time() < deadline:
            try:
                registry.admit("T-0002", "T-0002", tls=True)
            except Unauthenticated:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("revocation not seen within 5 s")
    finally:
        await registry.close()
