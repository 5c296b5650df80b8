"""The adaptive concurrency limit, the admission queue and the background share, on a fake
clock: every revision of the limit is the arithmetic of ``switch.core.concurrency``."""

import asyncio
import math

import pytest

from switch.core import metrics
from switch.core.concurrency import (
    MIN_WINDOW_SAMPLES,
    SMOOTHING,
    Gate,
    GradientLimit,
    LimitSettings,
    Overloaded,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _window(limiter: GradientLimit, clock: Clock, rtt: float, in_flight: int) -> None:
    """One full window of identical samples, then the clock past the window's end."""
    for _ in range(MIN_WINDOW_SAMPLES - 1):
        limiter.sample(rtt, in_flight)
    clock.now += limiter.s.window_s * 1.5  # past its end (float-safe)
    limiter.sample(rtt, in_flight)


def _expected(limit: float, gradient: float) -> float:
    target = limit * gradient + math.sqrt(limit)
    return limit * (1 - SMOOTHING) + target * SMOOTHING


def test_the_limit_grows_while_busy_at_the_minimum_rtt():
    clock = Clock()
    lim = GradientLimit(LimitSettings(initial=16, minimum=4, maximum=64), clock)
    _window(lim, clock, 0.010, in_flight=16)
    assert lim.min_rtt == pytest.approx(0.010)
    assert lim.limit == pytest.approx(_expected(16, 1.0))  # 16 + 0.25 * 4 = 17


def test_the_limit_shrinks_when_the_rtt_rises_past_the_tolerance():
    clock = Clock()
    lim = GradientLimit(LimitSettings(initial=40, minimum=4, maximum=64, tolerance=2.0), clock)
    _window(lim, clock, 0.010, in_flight=40)
    before = lim.limit
    _window(lim, clock, 0.050, in_flight=40)  # 5 x the minimum: gradient 2 * 10 / 50 = 0.4 -> 0.5
    assert lim.limit == pytest.approx(_expected(before, 0.5))
    assert lim.limit < before
    # Within the tolerance (2 x min), the gradient is 1: it grows again.
    shrunk = lim.limit
    _window(lim, clock, 0.019, in_flight=40)
    assert lim.limit == pytest.approx(_expected(shrunk, 1.0))


def test_sustained_overload_drives_it_to_the_floor_and_no_lower():
    clock = Clock()
    lim = GradientLimit(LimitSettings(initial=64, minimum=8, maximum=64), clock)
    _window(lim, clock, 0.005, in_flight=64)
    for _ in range(100):
        _window(lim, clock, 0.5, in_flight=64)
    assert lim.limit == 8.0


def test_an_idle_switch_keeps_its_limit():
    clock = Clock()
    lim = GradientLimit(LimitSettings(initial=32, minimum=4, maximum=64), clock)
    _window(lim, clock, 0.010, in_flight=2)
    _window(lim, clock, 0.100, in_flight=2)  # slow, but only 2 of 32 used: nothing learnt
    assert lim.limit == 32.0
    assert lim.last_rtt == pytest.approx(0.100)


def test_a_window_needs_both_its_time_and_its_samples():
    clock = Clock()
    lim = GradientLimit(LimitSettings(initial=16, maximum=64), clock)
    for _ in range(MIN_WINDOW_SAMPLES * 3):
        lim.sample(0.01, 16)  # many samples, no time passed
    assert lim.min_rtt is None
    clock.now += 10
    lim.sample(0.01, 16)
    assert lim.min_rtt == pytest.approx(0.01)


def test_the_limit_is_capped_at_the_maximum():
    clock = Clock()
    lim = GradientLimit(LimitSettings(initial=60, minimum=4, maximum=62), clock)
    for _ in range(10):
        _window(lim, clock, 0.010, in_flight=62)
    assert lim.limit == 62.0


# --- the gate ---------------------------------------------------------------------------


def _gate(**kw) -> Gate:
    clock = Clock()
    gate = Gate(LimitSettings(**{"initial": 2, "minimum": 1, "maximum": 64, **kw}), clock)
    gate.publish(metrics.reset())
    return gate


async def test_above_the_limit_a_request_waits_for_the_next_free_slot_in_order():
    gate = _gate(queue_s=5.0)
    assert gate.try_enter() and gate.try_enter()
    assert not gate.try_enter()
    first = asyncio.ensure_future(gate.enter(left_s=2.0))
    second = asyncio.ensure_future(gate.enter(left_s=2.0))
    await asyncio.sleep(0)  # let both join the queue
    assert gate.queued == 2
    gate.leave(0.01, 0.005)
    await first
    assert not second.done() and gate.in_flight == 2
    gate.leave(0.01, 0.005)
    await second
    assert gate.queued == 0 and gate.in_flight == 2


async def test_a_request_that_cannot_afford_the_expected_wait_is_refused_at_once():
    gate = _gate(queue_s=0.5)
    gate.try_enter()
    gate.try_enter()
    gate.hold_s = 0.2  # a slot frees every 0.1 s on average (limit 2)
    with pytest.raises(Overloaded) as err:
        await gate.enter(left_s=0.25)  # 0.25 - 0.2 of service leaves 0.05 s: less than 0.1
    assert err.value.reason == "expected_wait"
    assert "expected wait 100 ms" in err.value.message
    assert gate.queued == 0 and gate.in_flight == 2
    # The queue's own bound applies whatever the deadline.
    gate2 = _gate(queue_s=0.05)
    gate2.try_enter()
    gate2.try_enter()
    gate2.hold_s = 0.2
    with pytest.raises(Overloaded):
        await gate2.enter(left_s=30.0)


async def test_a_waiter_without_a_slot_in_its_bound_is_refused_and_leaves_the_queue():
    gate = _gate(queue_s=0.01)
    gate.try_enter()
    gate.try_enter()
    with pytest.raises(Overloaded) as err:
        await gate.enter(left_s=2.0)
    assert err.value.reason == "queue_timeout"
    assert gate.queued == 0
    gate.leave(0.01, None)
    assert gate.in_flight == 1  # no phantom waiter took the freed slot


async def test_a_cancelled_waiter_passes_its_slot_on():
    gate = _gate(queue_s=5.0)
    gate.try_enter()
    gate.try_enter()
    doomed = asyncio.ensure_future(gate.enter(left_s=2.0))
    await asyncio.sleep(0)
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    waiting = asyncio.ensure_future(gate.enter(left_s=2.0))
    await asyncio.sleep(0)
    gate.leave(0.01, None)
    await waiting
    assert gate.in_flight == 2 and gate.queued == 0


async def test_fixed_mode_refuses_at_once_at_max_in_flight():
    gate = Gate(LimitSettings(adaptive=False, maximum=2))
    assert gate.try_enter() and gate.try_enter()
    with pytest.raises(Overloaded) as err:
        await gate.enter(left_s=2.0)
    assert err.value.reason == "in_flight"
    assert gate.limit == 2


async def test_background_work_gets_its_share_of_the_limit_and_no_more():
    gate = _gate(initial=8, background_share=0.25)  # 2 of 8
    assert gate.background_cap == 2
    entered: list[int] = []
    release = asyncio.Event()

    async def attempt(i: int) -> None:
        async with gate.background_slot():
            entered.append(i)
            await release.wait()

    tasks = [asyncio.ensure_future(attempt(i)) for i in range(4)]
    await asyncio.sleep(0)
    assert entered == [0, 1] and gate.background == 2
    # Background slots count against the limit: terminals get the other 6.
    assert sum(gate.try_enter() for _ in range(10)) == 6
    release.set()
    await asyncio.gather(*tasks)
    assert entered == [0, 1, 2, 3] and gate.background == 0


async def test_background_always_has_one_slot_even_at_the_smallest_limit():
    gate = _gate(initial=1, background_share=0.25)
    assert gate.background_cap == 1
    async with gate.background_slot():
        assert gate.background == 1
        assert not gate.try_enter()  # the one slot is taken


async def test_the_gauges_read_the_gate():
    gate = _gate(initial=8)
    m = metrics.get()
    gate.try_enter()
    reg = m.registry
    assert reg.get_sample_value("payswitch_concurrency_limit") == 8
    assert reg.get_sample_value("payswitch_in_flight", {"kind": "terminal"}) == 1
    assert reg.get_sample_value("payswitch_admission_queue") == 0


async def test_a_grown_limit_serves_the_queue_before_a_newcomer():
    gate = _gate(queue_s=5.0)
    gate.try_enter()
    gate.try_enter()
    waiting = asyncio.ensure_future(gate.enter(left_s=2.0))
    await asyncio.sleep(0)
    assert gate.limiter is not None
    gate.limiter.limit = 4.0  # grew (a window revised it)
    await gate.enter(left_s=2.0)  # the newcomer dispatches the waiter first, then enters
    await waiting
    assert gate.in_flight == 4 and gate.queued == 0


async def test_no_slot_is_ever_lost_whatever_the_interleaving():
    """Seeded random arrivals, completions, cancellations, queue timeouts and background
    attempts: the books always balance, and once everything ends nothing is held."""
    import random

    rng = random.Random(19)
    gate = _gate(initial=6, minimum=2, maximum=8, queue_s=0.003, background_share=0.34)
    holders: list[asyncio.Future[None]] = []  # set to finish a terminal RPC holding a slot
    tasks: list[asyncio.Task[None]] = []
    outcomes = {"served": 0, "refused": 0, "cancelled": 0}

    async def terminal() -> None:
        try:
            await gate.enter(left_s=rng.choice((0.001, 1.0, 2.0)))
        except Overloaded:
            outcomes["refused"] += 1
            return
        except asyncio.CancelledError:
            outcomes["cancelled"] += 1
            raise
        done = asyncio.get_running_loop().create_future()
        holders.append(done)
        try:
            await done
        finally:
            outcomes["served"] += 1
            gate.leave(rng.uniform(0.001, 0.05), rng.uniform(0.001, 0.02))

    async def background() -> None:
        async with gate.background_slot():
            await asyncio.sleep(0)

    for _ in range(400):
        op = rng.random()
        if op < 0.45:
            tasks.append(asyncio.ensure_future(terminal()))
        elif op < 0.75 and holders:
            fut = holders.pop(rng.randrange(len(holders)))
            if not fut.done():  # its task may have been cancelled meanwhile
                fut.set_result(None)
        elif op < 0.85 and tasks:
            tasks[rng.randrange(len(tasks))].cancel()
        elif op < 0.95:
            tasks.append(asyncio.ensure_future(background()))
        else:
            await asyncio.sleep(0.004)  # let some queue bounds lapse
        await asyncio.sleep(0)
        assert gate.in_flight + gate.background <= 8 + gate.background_cap
        assert gate.in_flight >= 0 and gate.background >= 0
    while holders or not all(t.done() for t in tasks):
        for fut in holders:
            if not fut.done():
                fut.set_result(None)
        holders.clear()
        await asyncio.sleep(0.001)
    await asyncio.gather(*tasks, return_exceptions=True)
    assert (gate.in_flight, gate.background, gate.queued) == (0, 0, 0)
    assert outcomes["served"] > 50 and outcomes["refused"] > 0
