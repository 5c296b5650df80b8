"""Batch totals per currency and scheme, the 0510-style comparison, the cut-off clock, the
terminal's own totals and the settlement topology keys."""

import datetime as dt

import pytest

from payswitch import money
from payswitch.world.settlement import SettlementConfig
from payswitch.world.topology import TopologyError, parse
from switch.backoffice.batches.totals import Line, Mismatch, compare, totals_of
from switch.backoffice.settlement.scheduler import next_cutoff
from switch.domain.batches import BatchItem, ItemKind
from terminals.batch import BatchCloseResult, BatchLine, BatchTotals, format_close, parse_line


def item(kind, amount, cur="EUR", scheme="visa"):
    return BatchItem(f"t{amount}{kind}", kind, amount, cur, scheme, 0.0)


def test_totals_never_add_two_currencies_or_schemes():
    lines = totals_of(
        [
            item(ItemKind.SALE, 1250),
            item(ItemKind.SALE, 6000),
            item(ItemKind.REFUND, 500),
            item(ItemKind.VOID, 777),
            item(ItemKind.SALE, 1500, "JPY", "jcb"),
            item(ItemKind.SALE, 12345, "KWD", "unionpay"),
            item(ItemKind.SALE, 100, "EUR", "mastercard"),
        ]
    )
    assert lines == [
        Line("EUR", "mastercard", 1, 100),
        Line("EUR", "visa", 2, 7250, 1, 500, 1),
        Line("JPY", "jcb", 1, 1500),
        Line("KWD", "unionpay", 1, 12345),
    ]


def test_compare_reports_every_differing_figure_and_missing_lines():
    ours = [Line("EUR", "visa", 2, 7250, 1, 500, 1), Line("JPY", "jcb", 1, 1500)]
    theirs = [Line("EUR", "visa", 2, 7250, 1, 500, 0), Line("KWD", "unionpay", 1, 5)]
    assert compare(ours, theirs) == [
        Mismatch("EUR", "visa", "void_count", 1, 0),
        Mismatch("JPY", "jcb", "sale_count", 1, 0),
        Mismatch("JPY", "jcb", "sale_minor", 1500, 0),
        Mismatch("KWD", "unionpay", "sale_count", 0, 1),
        Mismatch("KWD", "unionpay", "sale_minor", 0, 5),
    ]
    assert compare(ours, ours) == []


def test_next_cutoff_is_utc_and_strictly_after_now():
    cutoff = dt.time(22, 0)
    at = dt.datetime(2027, 1, 15, 21, 59, 59, tzinfo=dt.UTC).timestamp()
    assert next_cutoff(at, cutoff) == at + 1
    exactly = at + 1
    assert next_cutoff(exactly, cutoff) == exactly + 86_400


def test_settlement_keys_are_parsed_and_checked():
    topo = parse({"settlement": {"cutoff": "23:30:05", "tolerance_mccs": ["5812"]}})
    assert topo.settlement.cutoff == dt.time(23, 30, 5)
    assert topo.settlement.capture_ceiling(1000, "5812") == 1200
    assert topo.settlement.capture_ceiling(1000, "5411") == 1000
    assert SettlementConfig().capture_ceiling(999, "4121") == 1198  # rounded down
    for bad in ({"cutoff": "25:00"}, {"cutoff": "noon"}, {"tolerance_mccs": "5812"}):
        with pytest.raises(TopologyError):
            parse({"settlement": bad})
    with pytest.raises(TopologyError):
        parse({"issuers": [{"id": "i", "listen": "127.0.0.1:1", "hold_ttl_s": 0}]})


def test_terminal_totals_and_the_printed_close_use_each_exponent():
    mine = BatchTotals()
    mine.sale(money.Amount(7250, "EUR"), "visa")
    mine.refund(money.Amount(500, "EUR"), "visa")
    mine.void("EUR", "visa")
    mine.sale(money.Amount(1500, "JPY"), "jcb")
    mine.sale(money.Amount(12345, "KWD"), "unionpay")
    protos = mine.to_proto()
    assert [p.currency for p in protos] == ["EUR", "JPY", "KWD"]
    lines = tuple(BatchLine.from_proto(p) for p in protos)
    result = BatchCloseResult(7, True, lines, (), "00")
    text = format_close(result)
    assert "BATCH 7 CLOSED  IN BALANCE" in text
    assert "72.50" in text and "5.00" in text and "1500 JPY" in text and "12.345" in text


def test_parse_line_reads_major_units_with_the_currency_exponent():
    assert parse_line("KWD:unionpay:1:12.345:0:0:0") == BatchLine("KWD", "unionpay", 1, 12345)
    assert parse_line("jpy:JCB:2:1500:1:100:0") == BatchLine("JPY", "jcb", 2, 1500, 1, 100)
    for bad in ("EUR:visa:1:1.005:0:0:0", "EUR:cash:1:1:0:0:0", "EUR:visa:x:1:0:0:0", "EUR"):
        with pytest.raises((ValueError, money.MoneyError)):
            parse_line(bad)
