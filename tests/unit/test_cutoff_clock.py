"""The back offices' cut-off clock: a caller may set it back, not forward past the node's."""

import pytest

from payswitch.settlement.clock import MAX_AHEAD_S, cutoff_clock

NOW = 1_800_000_000.0


def test_zero_means_the_nodes_own_clock():
    assert cutoff_clock(0, now=NOW) == NOW


def test_a_clock_in_the_past_or_within_the_skew_is_taken_as_given():
    assert cutoff_clock(1_000_000_000_123, now=NOW) == 1_000_000_000.123
    at = int((NOW + MAX_AHEAD_S) * 1000)
    assert cutoff_clock(at, now=NOW) == at / 1000


@pytest.mark.parametrize("now_ms", [-1, int((NOW + MAX_AHEAD_S) * 1000) + 1, 4_102_444_800_000])
def test_a_negative_clock_or_one_ahead_of_the_node_is_refused_naming_the_field(now_ms):
    with pytest.raises(ValueError, match=r"^now_ms: "):
        cutoff_clock(now_ms, now=NOW)
