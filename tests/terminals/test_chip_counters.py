"""The simulated chips' transaction counters (``terminals.card_sim``): one chip per card in a
process however many simulators, and with a state file one chip across processes (a second
``pos``/``demo`` run continues where the first stopped, so the issuer never sees a counter
twice); a chosen counter never moves the chip back."""

from __future__ import annotations

from pathlib import Path

import pytest

from terminals.card_sim import CardSimError, CardSimulator

PAN = "4111111111111111"


@pytest.fixture(autouse=True)
def fresh_process():
    """Each test starts as a new process would: no counters in memory (the process's own
    are put back after, for the other tests' chips)."""
    kept = dict(CardSimulator._atc)
    CardSimulator._atc.clear()
    yield
    CardSimulator._atc.clear()
    CardSimulator._atc.update(kept)


def sim(path: Path | None = None) -> CardSimulator:
    return CardSimulator(None, pool=object(), atc_path=path)  # type: ignore[arg-type]


def test_two_simulators_in_one_process_are_one_chip() -> None:
    assert [sim()._next_atc(PAN, "00", None) for _ in range(3)] == [1, 2, 3]


def test_the_state_file_carries_the_counter_to_the_next_process(tmp_path: Path) -> None:
    path = tmp_path / "state" / "chips.atc.json"
    assert [sim(path)._next_atc(PAN, "00", None) for _ in range(2)] == [1, 2]
    CardSimulator._atc.clear()  # a new process
    assert sim(path)._next_atc(PAN, "00", None) == 3
    assert sim(path)._next_atc(PAN, "01", None) == 1  # another sequence number, another chip


def test_a_chosen_counter_is_used_without_moving_the_chip_back(tmp_path: Path) -> None:
    path = tmp_path / "chips.atc.json"
    s = sim(path)
    assert s._next_atc(PAN, "00", 500) == 500
    assert s._next_atc(PAN, "00", 1) == 1  # a test's rolled-back counter
    assert s._next_atc(PAN, "00", None) == 501
    with pytest.raises(CardSimError):
        s._next_atc(PAN, "00", 0x10000)
