"""Contract tests of terminal devices (``Store.advance_device``), on every backend: a device is
bound to the first terminal that uses it, every counter is accepted once, and the intent write
of an authorization refuses a replayed counter with nothing written."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import types
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from storekit import NOW, new_tx

from switch.domain.devices import (
    WINDOW,
    Advance,
    CounterReplay,
    DeviceElsewhere,
    DeviceUnregistered,
    DeviceUse,
)
from switch.domain.transactions import TxState
from switch.store.base import Store

_stans = itertools.count(1)


def _ikid() -> str:
    return secrets.token_hex(8)


def use(ikid: str, counter: int, terminal: str = "T0001", stan: int | None = None) -> DeviceUse:
    return DeviceUse(ikid, terminal, counter, "2027-01-15", stan or next(_stans))


@pytest.fixture(params=["native", "defaults"])
async def cstore(request: pytest.FixtureRequest, store: Store) -> AsyncIterator[Store]:
    if request.param == "defaults":
        store.receive_with_intent = types.MethodType(Store.receive_with_intent, store)
    yield store


async def test_first_use_binds_the_device_and_each_counter_counts_once(store: Store) -> None:
    ikid = _ikid()
    assert await store.advance_device(use(ikid, 5), NOW) is Advance.ADVANCED
    device = await store.get_device(ikid)
    assert device is not None and (device.terminal_id, device.counter) == ("T0001", 5)
    assert await store.advance_device(use(ikid, 9), NOW + 1) is Advance.ADVANCED
    with pytest.raises(CounterReplay):  # the same counter, re-MACed with a new STAN
        await store.advance_device(use(ikid, 9), NOW + 2)
    with pytest.raises(CounterReplay):  # an older one, used already
        await store.advance_device(use(ikid, 5), NOW + 2)
    # An older one not used yet (requests of one terminal may arrive out of order): once.
    assert await store.advance_device(use(ikid, 7), NOW + 3) is Advance.ADVANCED
    with pytest.raises(CounterReplay):
        await store.advance_device(use(ikid, 7), NOW + 4)
    device = await store.get_device(ikid)
    assert device is not None and device.counter == 9  # the highest stays
    assert device.window == 0b10101  # 9, 7 and 5 used (bits 0, 2, 4)


async def test_counters_older_than_the_window_are_refused(store: Store) -> None:
    ikid = _ikid()
    await store.advance_device(use(ikid, 1000), NOW)
    with pytest.raises(CounterReplay):
        await store.advance_device(use(ikid, 1000 - WINDOW), NOW)
    assert await store.advance_device(use(ikid, 1000 - WINDOW + 1), NOW) is Advance.ADVANCED
    assert await store.advance_device(use(ikid, 5000), NOW) is Advance.ADVANCED  # a jump
    with pytest.raises(CounterReplay):  # the jump left the old window behind
        await store.advance_device(use(ikid, 1001), NOW)
    device = await store.get_device(ikid)
    assert device is not None and (device.counter, device.window) == (5000, 1)


async def test_the_same_transmission_again_changes_nothing(store: Store) -> None:
    ikid = _ikid()
    first = use(ikid, 3, stan=4242)
    assert await store.advance_device(first, NOW) is Advance.ADVANCED
    assert await store.advance_device(first, NOW + 1) is Advance.SAME_TRANSMISSION
    device = await store.get_device(ikid)
    assert device is not None and device.updated_at == NOW


async def test_a_device_belongs_to_one_terminal(store: Store) -> None:
    ikid = _ikid()
    await store.advance_device(use(ikid, 1, terminal="T0001"), NOW)
    with pytest.raises(DeviceElsewhere):
        await store.advance_device(use(ikid, 2, terminal="T0002"), NOW)
    device = await store.get_device(ikid)
    assert device is not None and (device.terminal_id, device.counter) == ("T0001", 1)


async def test_concurrent_uses_of_one_counter_exactly_one_wins(
    store: Store, open_more: Callable[[], Awaitable[Store]]
) -> None:
    stores = [store, await open_more(), await open_more()]
    ikid = _ikid()
    await store.advance_device(use(ikid, 1), NOW)
    tries = [stores[i % 3].advance_device(use(ikid, 2), NOW) for i in range(30)]
    results = await asyncio.gather(*tries, return_exceptions=True)
    won = [r for r in results if r is Advance.ADVANCED]
    refused = [r for r in results if isinstance(r, CounterReplay)]
    assert (len(won), len(refused)) == (1, 29), results


@pytest.mark.parametrize(
    "bad",
    [
        DeviceUse("not-hex-at-all!!", "T0001", 1, "2027-01-15", 1),
        DeviceUse("0011223344556677", "", 1, "2027-01-15", 1),
        DeviceUse("0011223344556677", "T0001", 0, "2027-01-15", 1),
    ],
)
async def test_bad_input_is_refused_before_the_store(store: Store, bad: DeviceUse) -> None:
    with pytest.raises(ValueError):
        await store.advance_device(bad, NOW)
    assert await store.get_device(bad.ikid) is None


async def test_the_intent_refuses_a_replayed_counter_with_nothing_written(cstore: Store) -> None:
    ikid = _ikid()
    first = new_tx()
    await cstore.receive_with_intent(
        first, vault=None, attach=None, acquirer_id="ACQ1", now=NOW,
        device=use(ikid, 7, stan=first.stan),
    )  # fmt: skip
    # Another STAN, the same device counter (the STAN its own: a module counter's STAN could
    # equal it, and the same counter with the same STAN is a retransmission, not a replay).
    replay = new_tx()
    with pytest.raises(CounterReplay):
        await cstore.receive_with_intent(
            replay,
            vault=None,
            attach=None,
            acquirer_id="ACQ1",
            now=NOW,
            device=use(ikid, 7, stan=replay.stan),
        )
    assert await cstore.get_transaction(replay.id) is None
    stored = await cstore.get_transaction(first.id)
    assert stored is not None and stored.state is TxState.PENDING
    elsewhere = new_tx(terminal_id="T0002")
    with pytest.raises(DeviceElsewhere):
        await cstore.receive_with_intent(
            elsewhere,
            vault=None,
            attach=None,
            acquirer_id="ACQ1",
            now=NOW,
            device=use(ikid, 8, terminal="T0002", stan=elsewhere.stan),
        )
    assert await cstore.get_transaction(elsewhere.id) is None


def strict(ikid: str, counter: int, terminal: str = "T0001", stan: int | None = None) -> DeviceUse:
    return DeviceUse(
        ikid, terminal, counter, "2027-01-15", stan or next(_stans), registered_only=True
    )


async def test_registration_binds_the_device_before_any_use(store: Store) -> None:
    ikid = _ikid()
    assert await store.register_device(ikid, "T0001", NOW) is True
    assert await store.register_device(ikid, "T0001", NOW + 1) is False  # again: no change
    device = await store.get_device(ikid)
    assert device is not None and (device.terminal_id, device.counter, device.window) == (
        "T0001",
        0,
        0,
    )
    with pytest.raises(DeviceElsewhere):
        await store.register_device(ikid, "T0002", NOW + 2)
    with pytest.raises(DeviceElsewhere):  # nor can the other terminal use it
        await store.advance_device(strict(ikid, 1, terminal="T0002"), NOW + 2)
    assert await store.advance_device(strict(ikid, 1), NOW + 3) is Advance.ADVANCED
    assert await store.advance_device(strict(ikid, 3), NOW + 4) is Advance.ADVANCED
    with pytest.raises(CounterReplay):
        await store.advance_device(strict(ikid, 1), NOW + 5)
    device = await store.get_device(ikid)
    assert device is not None and (device.counter, device.window) == (3, 0b101)
    # A device first used (first-use binding) cannot be registered to someone else either.
    used = _ikid()
    await store.advance_device(use(used, 2), NOW)
    assert await store.register_device(used, "T0001", NOW) is False
    with pytest.raises(DeviceElsewhere):
        await store.register_device(used, "T0002", NOW)


async def test_strict_binding_refuses_an_unregistered_device_with_nothing_written(
    cstore: Store,
) -> None:
    ikid = _ikid()
    tx = new_tx()
    with pytest.raises(DeviceUnregistered) as err:
        await cstore.receive_with_intent(
            tx, vault=None, attach=None, acquirer_id="ACQ1", now=NOW, device=strict(ikid, 1)
        )
    assert err.value.field == "encrypted_card.ksn"
    assert await cstore.get_transaction(tx.id) is None
    assert await cstore.get_device(ikid) is None
    await cstore.register_device(ikid, "T0001", NOW)
    ok = new_tx()
    await cstore.receive_with_intent(
        ok,
        vault=None,
        attach=None,
        acquirer_id="ACQ1",
        now=NOW,
        device=strict(ikid, 1, stan=ok.stan),
    )
    stored = await cstore.get_transaction(ok.id)
    assert stored is not None and stored.state is TxState.PENDING
