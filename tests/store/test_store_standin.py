"""Contract: stand-in usage per card, currency and window never passes its limit, also with
concurrent callers on several store connections (as several switch processes would be)."""

import asyncio

import pytest

TOKEN = "a" * 64
WINDOW = 86_400


async def test_adds_up_to_the_limit_then_refuses(store):
    assert await store.standin_reserve(TOKEN, "EUR", 0, WINDOW, 4000, 10_000)
    assert await store.standin_reserve(TOKEN, "EUR", 0, WINDOW, 6000, 10_000)  # exactly 10 000
    assert not await store.standin_reserve(TOKEN, "EUR", 0, WINDOW, 1, 10_000)


async def test_an_amount_above_the_limit_alone_is_refused(store):
    assert not await store.standin_reserve(TOKEN, "EUR", 0, WINDOW, 10_001, 10_000)
    assert await store.standin_reserve(TOKEN, "EUR", 0, WINDOW, 10_000, 10_000)  # nothing taken


async def test_cards_currencies_and_windows_are_separate(store):
    assert await store.standin_reserve(TOKEN, "EUR", 0, WINDOW, 10_000, 10_000)
    assert await store.standin_reserve("b" * 64, "EUR", 0, WINDOW, 10_000, 10_000)
    assert await store.standin_reserve(TOKEN, "USD", 0, WINDOW, 10_000, 10_000)
    assert await store.standin_reserve(TOKEN, "EUR", WINDOW, WINDOW, 10_000, 10_000)
    assert not await store.standin_reserve(TOKEN, "EUR", WINDOW, WINDOW, 1, 10_000)


async def test_non_integer_money_is_refused(store):
    with pytest.raises(ValueError):
        await store.standin_reserve(TOKEN, "EUR", 0, WINDOW, 1.5, 10_000)
    with pytest.raises(ValueError):
        await store.standin_reserve(TOKEN, "EUR", 0, WINDOW, 100, -1)


async def test_concurrent_reservations_never_exceed_the_limit(store, open_more):
    stores = [store, await open_more(), await open_more()]
    results = await asyncio.gather(
        *(stores[i % 3].standin_reserve(TOKEN, "EUR", 0, WINDOW, 1000, 5000) for i in range(12))
    )
    assert sum(results) == 5  # 5 x 1000 fit, 7 refused, whichever order they ran in
    assert not await store.standin_reserve(TOKEN, "EUR", 0, WINDOW, 1, 5000)
