"""The ``[saf]`` topology table: defaults, small test values, and refused input."""

import tomllib
from pathlib import Path

import pytest

from payswitch.world.topology import SafConfig, TopologyError, parse

DEFAULT_TOPOLOGY = Path(__file__).resolve().parents[2] / "topology" / "default.toml"


def _doc(saf=None) -> dict:
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    if saf is not None:
        doc["saf"] = saf
    return doc


def test_defaults_when_absent():
    assert parse(_doc()).saf == SafConfig()


def test_small_values_for_tests():
    cfg = parse(
        _doc({"max_attempts": 3, "base_delay_s": 0.01, "lease_s": 1, "attempt_timeout_s": 0.5})
    ).saf
    assert (cfg.max_attempts, cfg.base_delay_s, cfg.lease_s) == (3, 0.01, 1.0)
    assert cfg.max_delay_s == SafConfig().max_delay_s


@pytest.mark.parametrize(
    ("saf", "needle"),
    [
        ({"max_attempt": 3}, "unknown keys"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"base_delay_s": -1}, "base_delay_s"),
        ({"max_age_s": "1d"}, "max_age_s"),
        ({"base_delay_s": 5, "max_delay_s": 1}, "max_delay_s"),
        ({"lease_s": 1, "attempt_timeout_s": 2}, "lease_s"),
        ({"concurrency": True}, "concurrency"),
    ],
)
def test_bad_values_are_refused(saf, needle):
    with pytest.raises(TopologyError, match=needle):
        parse(_doc(saf))


def test_not_a_table():
    with pytest.raises(TopologyError, match="saf"):
        parse(_doc(3))
