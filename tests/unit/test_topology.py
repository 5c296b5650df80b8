"""The topology file: the default parses, cross-references are checked, BIN routing works,
the switch's load-shedding keys are validated."""

import pytest

from payswitch.cards import Scheme
from payswitch.world.topology import TopologyError, load, parse

DEFAULT = "topology/default.toml"


def test_default_topology_has_the_required_world():
    topo = load(DEFAULT)
    assert len(topo.acquirers) >= 2
    assert len(topo.schemes) >= 2
    assert len(topo.issuers) >= 3
    assert topo.issuer_for_pan("4111111111111111").id == "bank-a"
    assert topo.issuer_for_pan("2223000048400011").id == "bank-b"
    assert topo.issuer_for_pan("3530111333300000").id == "bank-c"
    assert topo.issuer_for_pan("9999999999999995") is None
    assert topo.scheme_for_brand(Scheme.JCB).id == "globalnet"
    assert topo.node_kind("acq-alpha") == "acquirer"


def _doc():
    return {
        "acquirers": [{"id": "a", "listen": "127.0.0.1:1", "schemes": ["visa"]}],
        "schemes": [{"id": "s", "listen": "127.0.0.1:2", "brands": ["visa"]}],
        "issuers": [
            {
                "id": "i",
                "listen": "127.0.0.1:3",
                "bins": ["4"],
                "accounts": [{"id": "x", "currency": "EUR", "balance": 1}],
                "cards": [{"pan": "4111111111111111", "expiry": "2812", "account": "x"}],
            }
        ],
        "merchants": [{"id": "m", "acquirers": ["a"]}],
        "terminals": [{"id": "t", "merchant": "m"}],
    }


def test_longest_bin_range_wins():
    doc = _doc()
    doc["issuers"].append(
        {"id": "j", "listen": "127.0.0.1:4", "bins": ["411111-411112"], "accounts": []}
    )
    topo = parse(doc)
    assert topo.issuer_for_pan("4111111111111111").id == "j"
    assert topo.issuer_for_pan("4222222222222").id == "i"


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        (("merchants", 0, "acquirers"), ["nope"], "unknown acquirers"),
        (("terminals", 0, "merchant"), "nope", "unknown merchant"),
        (("acquirers", 0, "schemes"), ["jcb"], "no scheme node carries jcb"),
        (("acquirers", 0, "schemes"), ["diners"], "diners"),
        (("acquirers", 0, "error_rate"), 1.5, "between 0 and 1"),
        (("issuers", 0, "bins"), ["41-4"], "bad BIN range"),
        (
            ("issuers", 0, "cards"),
            [{"pan": "4111111111111112", "expiry": "2812", "account": "x"}],
            "Luhn",
        ),
        (("issuers", 0, "accounts"), [{"id": "x", "currency": "XXX", "balance": 1}], "currency"),
        (("issuers", 0, "atc_window"), 63, "atc_window must be 1..62"),
        (("issuers", 0, "atc_window"), 0, "atc_window must be a positive integer"),
        (("standin",), {"files_dir": ""}, "files_dir must be a path"),
        (("standin",), {"max_age_s": 0}, "max_age_s must be a positive number"),
        (("standin",), {"refresh_s": -1}, "refresh_s must be a positive number"),
    ],
)
def test_bad_topologies_are_refused(path, value, needle):
    doc = _doc()
    obj = doc
    for part in path[:-1]:
        obj = obj[part]
    obj[path[-1]] = value
    with pytest.raises(TopologyError) as err:
        parse(doc)
    assert needle in str(err.value)
    assert "4111111111111112" not in str(err.value)


def test_switch_load_shedding_defaults():
    sw = parse(_doc()).switch
    assert (sw.max_in_flight, sw.terminal_rate_per_s, sw.terminal_burst) == (256, 50.0, 100)
    sw = load("topology/default.toml").switch
    assert (sw.max_in_flight, sw.terminal_rate_per_s, sw.terminal_burst) == (256, 50.0, 100)


def test_switch_load_shedding_values_are_read():
    doc = _doc()
    doc["switch"] = {"max_in_flight": 2, "terminal_rate_per_s": 0.5, "terminal_burst": 3}
    sw = parse(doc).switch
    assert (sw.max_in_flight, sw.terminal_rate_per_s, sw.terminal_burst) == (2, 0.5, 3)


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("max_in_flight", 0, "positive integer"),
        ("max_in_flight", -1, "positive integer"),
        ("max_in_flight", 2.5, "positive integer"),
        ("max_in_flight", "10", "positive integer"),
        ("max_in_flight", True, "positive integer"),
        ("terminal_burst", 0, "positive integer"),
        ("terminal_rate_per_s", 0, "positive number"),
        ("terminal_rate_per_s", -3.0, "positive number"),
        ("terminal_rate_per_s", "fast", "positive number"),
        ("terminal_rate_per_s", float("nan"), "positive number"),
        ("terminal_rate_per_s", float("inf"), "positive number"),
        ("admission", "lifo", "adaptive, fixed"),
        ("limit_min", 0, "positive integer"),
        ("queue_ms", -5, "positive integer"),
        ("limit_tolerance", 0.5, "at least 1"),
        ("background_share", 1.5, "at most 1"),
    ],
)
def test_bad_switch_load_shedding_values_are_refused(key, value, needle):
    doc = _doc()
    doc["switch"] = {key: value}
    with pytest.raises(TopologyError) as err:
        parse(doc)
    assert key in str(err.value) and needle in str(err.value)


def test_admission_settings_are_read_and_capped_at_max_in_flight():
    from switch.core.concurrency import LimitSettings

    sw = parse(_doc()).switch
    assert (sw.admission, sw.limit_initial, sw.limit_min, sw.queue_ms) == ("adaptive", 64, 32, 400)
    doc = _doc()
    doc["switch"] = {
        "max_in_flight": 4,
        "admission": "adaptive",
        "limit_tolerance": 1.5,
        "limit_window_ms": 200,
        "queue_ms": 80,
        "background_share": 0.5,
    }
    s = LimitSettings.of(parse(doc).switch)
    assert (s.adaptive, s.initial, s.minimum, s.maximum) == (True, 4, 4, 4)
    assert (s.tolerance, s.window_s, s.queue_s, s.background_share) == (1.5, 0.2, 0.08, 0.5)


def test_abandoned_key_bound_defaults_is_read_and_stays_above_the_budget():
    assert parse(_doc()).switch.abandoned_key_s == 60.0
    doc = _doc()
    doc["switch"] = {"abandoned_key_s": 10}
    assert parse(doc).switch.abandoned_key_s == 10.0
    for bad, needle in ((0, "positive number"), (5, "3 x max_budget_ms")):
        doc["switch"] = {"abandoned_key_s": bad}  # 5 s < 3 x the default 2 s budget
        with pytest.raises(TopologyError) as err:
            parse(doc)
        assert needle in str(err.value)


def test_stand_in_file_settings_and_the_atc_window_are_read():
    doc = _doc()
    doc["standin"] = {"files_dir": "/tmp/x", "publish_interval_s": 2, "refresh_s": 1}
    doc["issuers"][0]["atc_window"] = 62
    topo = parse(doc)
    cfg = topo.standin
    assert (cfg.files_dir, cfg.publish_interval_s, cfg.refresh_s, cfg.max_age_s) == (
        "/tmp/x",
        2.0,
        1.0,
        300.0,
    )
    assert topo.issuers[0].atc_window == 62
    assert parse(_doc()).issuers[0].atc_window == 32


def test_risk_settings_and_countries():
    topo = load(DEFAULT)
    assert not topo.risk.enabled and topo.risk.fallback_code == "05"
    assert topo.risk.path(topo.risk.rules, topo.source).is_file()  # next to the topology
    assert topo.terminal_countries() == {"T-0001": "DE", "T-0002": "DE", "T-0003": "FR"}
    doc = _doc()
    doc["risk"] = {"enabled": True, "slice_ms": 20, "fallback_floor": {"EUR": 500}}
    doc["terminals"][0]["country"] = "NL"
    parsed = parse(doc)
    assert parsed.risk.enabled and parsed.risk.floor_of("EUR") == 500
    assert parsed.risk.floor_of("USD") is None and parsed.terminal_countries() == {"t": "NL"}
    for bad in (
        {"nope": 1},
        {"fallback_code": "00"},
        {"fallback_code": "5"},
        {"slice_ms": 0},
        {"fallback_floor": {"XXX": 1}},
        {"small": {"EUR": -1}},
        {"enabled": "yes"},
    ):
        doc = _doc()
        doc["risk"] = bad
        with pytest.raises(TopologyError, match="risk"):
            parse(doc)
    for country in ("de", "DEU", 7):
        doc = _doc()
        doc["merchants"][0]["country"] = country
        with pytest.raises(TopologyError, match="country"):
            parse(doc)
