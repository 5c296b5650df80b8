"""Topology checks added for the launcher: unique ids and addresses, card expiry format."""

from __future__ import annotations

import copy

import pytest

from payswitch.world.topology import TopologyError, parse

DOC = {
    "switch": {"id": "sw", "listen": "127.0.0.1:1"},
    "acquirers": [{"id": "a", "listen": "127.0.0.1:2", "schemes": ["visa"]}],
    "schemes": [{"id": "s", "listen": "127.0.0.1:3", "brands": ["visa"]}],
    "issuers": [
        {
            "id": "i",
            "listen": "127.0.0.1:4",
            "bins": ["4"],
            "accounts": [{"id": "x", "currency": "EUR", "balance": 1}],
            "cards": [{"pan": "4111111111111111", "expiry": "2812", "account": "x"}],
        }
    ],
}


def test_the_base_document_parses() -> None:
    assert parse(DOC).issuer("i").cards[0].expiry == "2812"


def test_switch_id_may_not_be_a_node_id() -> None:
    doc = copy.deepcopy(DOC)
    doc["switch"]["id"] = "a"
    with pytest.raises(TopologyError, match="duplicate node ids"):
        parse(doc)


def test_two_nodes_may_not_share_a_listen_address() -> None:
    doc = copy.deepcopy(DOC)
    doc["schemes"][0]["listen"] = "127.0.0.1:2"
    with pytest.raises(TopologyError, match="listen addresses"):
        parse(doc)


@pytest.mark.parametrize("expiry", ["", "2813", "28-1", "12/28", "281"])
def test_card_expiry_must_be_yymm(expiry: str) -> None:
    doc = copy.deepcopy(DOC)
    doc["issuers"][0]["cards"][0]["expiry"] = expiry
    with pytest.raises(TopologyError, match="expiry must be YYMM") as err:
        parse(doc)
    assert "4111111111111111" not in str(err.value)
