"""Fee table: rule choice and integer half-up rounding on the minor unit."""

import pytest

from payswitch.settlement.fees import NO_FEES, Fees, bps_of, fee_for, presentment_fees
from payswitch.world.settlement import FeeConfig
from payswitch.world.topology import TopologyError, parse

TABLE = (
    FeeConfig("visa", "*", "EUR", interchange_bps=20, scheme_fee_bps=2, scheme_fee_fixed_minor=1),
    FeeConfig("visa", "5812", "EUR", interchange_bps=30, interchange_fixed_minor=2),
    FeeConfig("jcb", "*", "JPY", interchange_bps=100, scheme_fee_fixed_minor=1),
    FeeConfig("unionpay", "*", "KWD", interchange_bps=60, scheme_fee_bps=5),
)


@pytest.mark.parametrize(
    ("amount", "bps", "fee"),
    [
        (100, 50, 1),  # 0.5 -> up
        (99, 50, 0),  # 0.495 -> down
        (250, 20, 1),  # 0.5 -> up
        (249, 20, 0),  # 0.498 -> down
        (10_000, 20, 20),  # exact
        (0, 300, 0),
        (999_999_999_999, 10_000, 999_999_999_999),  # no float anywhere
    ],
)
def test_bps_rounds_half_up_on_the_minor_unit(amount, bps, fee):
    assert bps_of(amount, bps) == fee


def test_negative_inputs_are_refused():
    with pytest.raises(ValueError):
        bps_of(-1, 10)
    with pytest.raises(ValueError):
        fee_for(TABLE, "visa", "5411", "EUR", 10.0)


def test_the_mcc_rule_wins_over_the_default_and_fixed_parts_add():
    assert fee_for(TABLE, "visa", "5411", "EUR", 7250) == Fees(15, 1 + 1)  # 14.5 -> 15
    assert fee_for(TABLE, "VISA", "5812", "EUR", 5800) == Fees(17 + 2, 0)  # 17.4 -> 17


def test_each_currency_uses_its_own_minor_unit():
    assert fee_for(TABLE, "jcb", "5411", "JPY", 1500) == Fees(15, 1)  # yen
    assert fee_for(TABLE, "unionpay", "5411", "KWD", 12345) == Fees(74, 6)  # fils: 74.07, 6.17


def test_no_rule_means_no_fees_and_never_another_currency():
    assert fee_for(TABLE, "visa", "5411", "USD", 10_000) == Fees(0, 0)
    assert fee_for(TABLE, "amex", "5411", "EUR", 10_000) == Fees(0, 0)


def _doc(fees):
    return {"switch": {}, "fees": fees}


def test_topology_fee_entries_are_checked():
    topo = parse(_doc([{"scheme": "visa", "currency": "EUR", "interchange_bps": 20}]))
    assert topo.fees == (FeeConfig("visa", "*", "EUR", interchange_bps=20),)
    for bad in (
        [{"scheme": "cash", "currency": "EUR"}],
        [{"scheme": "visa", "currency": "EUX"}],
        [{"scheme": "visa", "currency": "EUR", "interchange_bps": -1}],
        [{"scheme": "visa", "currency": "EUR"}, {"scheme": "visa", "currency": "EUR"}],
    ):
        with pytest.raises(TopologyError):
            parse(_doc(bad))


def test_a_refund_presentment_carries_no_fees() -> None:
    """One rule for the acquirer's report, the ledger and the reconciliation."""
    assert presentment_fees(TABLE, "REFUND", "visa", "5411", "EUR", 10_000) == NO_FEES
    sale = presentment_fees(TABLE, "CAPTURE", "visa", "5411", "EUR", 10_000)
    assert sale == fee_for(TABLE, "visa", "5411", "EUR", 10_000) == Fees(20, 3)
