"""The topology file: the default parses, cross-references are checked, BIN routing works."""

import pytest

from network.topology import TopologyError, load, parse
from payswitch.cards import Scheme

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
