"""The one anti-replay window (payswitch.replay_window) the device counters and the ATCs use."""

import pytest

from payswitch.replay_window import MAX_WIDTH, Replayed, TooOld, Window, accept


def test_the_first_value_opens_the_window():
    assert accept(None, 5, 8) == Window(5, 0b1)


def test_a_higher_value_slides_the_window_and_a_late_one_inside_is_taken_once():
    w = accept(Window(5, 0b1), 8, 8)
    assert w == Window(8, 0b1001)  # 8 (bit 0) and 5 (bit 3)
    w = accept(w, 6, 8)
    assert w == Window(8, 0b1101)
    with pytest.raises(Replayed):
        accept(w, 6, 8)
    with pytest.raises(Replayed):
        accept(w, 8, 8)


def test_older_than_the_window_cannot_be_told_and_is_refused():
    w = Window(20, 0b1)
    assert accept(w, 13, 8).bits == 0b1000_0001  # age 7: the oldest the window holds
    with pytest.raises(TooOld):
        accept(w, 12, 8)


def test_a_jump_past_the_window_forgets_everything_below():
    assert accept(Window(5, 0b1111), 100, 8) == Window(100, 0b1)
    # The bit set never grows past its width (63 bits: a signed 64-bit column).
    w = Window(0, 0)
    for v in range(1, 200):
        w = accept(w, v, MAX_WIDTH)
        assert w.bits < 1 << MAX_WIDTH


@pytest.mark.parametrize("width", [0, MAX_WIDTH + 1])
def test_a_width_the_column_cannot_hold_is_refused(width):
    with pytest.raises(ValueError):
        accept(None, 1, width)
