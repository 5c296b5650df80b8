"""STANs: 1..999999, wrapping, and never repeated by a restarted terminal with a state file."""

from __future__ import annotations

import json

import pytest

from terminals.sdk import Terminal
from terminals.stan import MAX_STAN, StanCounter, StanStateError, stan_of


def test_stan_of_wraps_to_one():
    assert [stan_of(n) for n in (1, 2, MAX_STAN, MAX_STAN + 1, 2 * MAX_STAN + 5)] == [
        1,
        2,
        999_999,
        1,
        5,
    ]


def test_in_memory_counter_counts_and_wraps():
    c = StanCounter(start=999_998)
    assert [c.next() for _ in range(4)] == [999_998, 999_999, 1, 2]


def test_in_memory_default_start_is_a_valid_stan():
    assert 1 <= StanCounter().next() <= MAX_STAN


def test_file_counter_continues_after_a_restart(tmp_path):
    path = tmp_path / "t.json"
    first = StanCounter(path, block=1)
    assert [first.next() for _ in range(3)] == [1, 2, 3]
    again = StanCounter(path, block=1)
    assert again.next() == 4


def test_block_reservation_skips_but_never_repeats(tmp_path):
    path = tmp_path / "t.json"
    first = StanCounter(path, block=10)
    used = [first.next() for _ in range(3)]
    assert json.loads(path.read_text()) == {"reserved": 10}  # persisted before first use
    restarted = StanCounter(path, block=10)
    later = [restarted.next() for _ in range(12)]
    assert later[0] == 11 and not set(used) & set(later)
    assert json.loads(path.read_text()) == {"reserved": 30}


def test_file_counter_wraps(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"reserved": MAX_STAN - 1}))
    c = StanCounter(path, block=2)
    assert [c.next() for _ in range(3)] == [999_999, 1, 2]


def test_two_counters_on_one_file_never_collide(tmp_path):
    path = tmp_path / "t.json"
    a, b = StanCounter(path, block=3), StanCounter(path, block=3)
    got = [c.next() for _ in range(10) for c in (a, b)]
    assert len(got) == len(set(got)) == 20


def test_corrupt_state_is_refused_not_reset(tmp_path):
    path = tmp_path / "t.json"
    path.write_text("{not json")
    with pytest.raises(StanStateError):
        StanCounter(path).next()


async def test_a_restarted_terminal_sends_new_stans(switch, tmp_path):
    path = tmp_path / "stan" / "T-0001.json"
    for _ in range(2):
        async with Terminal(switch.address, "T-0001", "M-GROCER", stan_path=path) as t:
            await t.pay(100, "EUR", "4111111111111111", "2812")
            await t.pay(100, "EUR", "4111111111111111", "2812")
    stans = [r.stan for r in switch.fake.requests["Authorize"]]
    assert len(stans) == len(set(stans)) == 4
