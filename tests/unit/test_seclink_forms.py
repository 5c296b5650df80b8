"""The canonical forms of payswitch/seclink.py, byte by byte as its docstring documents them
(what an integrator implements in another language), the answer form's field lists held to the
schema, the local_time window and the topology's new settings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from payswitch import seclink
from payswitch.v1 import common_pb2, terminal_pb2
from payswitch.world.topology import TopologyError, load, parse
from switch.wire import validation
from switch.wire.errors import InvalidArgument

DEFAULT_TOPOLOGY = Path(__file__).resolve().parents[2] / "topology" / "default.toml"
KSN = bytes.fromhex("0000000112345678000000A1")


def tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + len(value).to_bytes(4, "big") + value


def test_void_form_byte_by_byte():
    req = terminal_pb2.VoidRequest(
        idempotency_key="k-1", terminal_id="T-0001", transaction_id="ab" * 16, ksn=KSN
    )
    expected = (
        b"PSW-MAC-1"
        + tlv(1, b"void")
        + tlv(2, b"T-0001")
        + tlv(3, b"ab" * 16)
        + tlv(4, KSN)
        + tlv(5, b"k-1")
    )
    assert seclink.operation_mac_input(req) == expected
    assert seclink.operation_mac_input(req, "") == expected[: -len(tlv(5, b"k-1"))] + tlv(5, b"")


def test_capture_form_marks_an_absent_amount_with_empty_fields():
    req = terminal_pb2.CaptureRequest(terminal_id="T-1", transaction_id="t", ksn=KSN)
    absent = seclink.operation_mac_input(req)
    assert tlv(4, b"") + tlv(5, b"") in absent
    req.amount.CopyFrom(common_pb2.Money(minor_units=1250, currency="EUR"))
    assert tlv(4, b"1250") + tlv(5, b"EUR") in seclink.operation_mac_input(req)


def test_refund_and_close_batch_forms():
    refund = terminal_pb2.RefundRequest(
        terminal_id="T-1",
        original_transaction_id="o",
        amount=common_pb2.Money(minor_units=5, currency="JPY"),
        stan=42,
        local_time="2026-12-07T10:00:00",
        ksn=KSN,
        idempotency_key="r",
    )
    assert seclink.operation_mac_input(refund) == b"PSW-MAC-1" + b"".join(
        tlv(i, v)
        for i, v in enumerate(
            [b"refund", b"T-1", b"o", b"5", b"JPY", b"42", b"2026-12-07T10:00:00", KSN, b"r"],
            start=1,
        )
    )
    line = terminal_pb2.BatchTotal(
        currency="EUR", scheme=common_pb2.CARD_SCHEME_VISA, sale_count=2, sale_minor=300
    )
    close = terminal_pb2.CloseBatchRequest(
        terminal_id="T-1", merchant_id="M-1", terminal_totals=[line], ksn=KSN
    )
    inner = b"".join(
        tlv(i, v)
        for i, v in enumerate(
            [b"EUR", str(common_pb2.CARD_SCHEME_VISA).encode(), b"2", b"300", b"0", b"0", b"0"],
            start=1,
        )
    )
    totals = len(inner).to_bytes(4, "big") + inner
    assert seclink.operation_mac_input(close) == b"PSW-MAC-1" + b"".join(
        tlv(i, v) for i, v in enumerate([b"close_batch", b"T-1", b"M-1", totals, KSN, b""], start=1)
    )


def test_operations_are_domain_separated():
    void = terminal_pb2.VoidRequest(terminal_id="T-1", transaction_id="t", ksn=KSN)
    capture = terminal_pb2.CaptureRequest(terminal_id="T-1", transaction_id="t", ksn=KSN)
    assert seclink.operation_mac_input(void) != seclink.operation_mac_input(capture)
    resp = terminal_pb2.VoidResponse(response_code=common_pb2.RESPONSE_CODE_APPROVED)
    assert seclink.canonical_response("void", resp) != seclink.canonical_response("capture", resp)


def test_response_form_byte_by_byte_and_excludes_the_mac():
    resp = terminal_pb2.VoidResponse(response_code=common_pb2.RESPONSE_CODE_APPROVED, message="m")
    resp.transaction.amount.CopyFrom(common_pb2.Money(minor_units=7, currency="EUR"))
    money = tlv(1, b"7") + tlv(2, b"EUR")
    # Transaction fields 1..19: strings empty, numbers and enums "0", amount set, captured
    # and refunded unset (length 0).
    values = [b"", b"0", b"0", b"", b"", b"0", b"", money, b"", b"", b"0", b"", b""]
    values += [b"0", b"", b"", b"", b"0", b"0"]
    tx_bytes = b"".join(tlv(n, v) for n, v in enumerate(values, start=1))
    expected = (
        b"PSW-RMAC-1"
        + tlv(0, b"void")
        + tlv(1, str(common_pb2.RESPONSE_CODE_APPROVED).encode())
        + tlv(2, tx_bytes)
        + tlv(3, b"m")
        + tlv(4, b"0")
    )
    assert seclink.canonical_response("void", resp) == expected
    resp.mac = bytes(16)
    assert seclink.canonical_response("void", resp) == expected
    resp.rekey_required = True
    assert seclink.canonical_response("void", resp) != expected


def test_the_risk_fields_are_covered_only_when_set():
    """Unset, an answer keeps its version-1 form (the published vectors hold); set, the risk
    fields are appended after field 13, so none can be dropped, added or changed unseen."""
    resp = terminal_pb2.AuthorizeResponse(response_code=common_pb2.RESPONSE_CODE_SUSPECTED_FRAUD)
    v1 = seclink.canonical_response("authorize", resp)
    assert v1.startswith(b"PSW-RMAC-1") and v1.endswith(tlv(13, b"0"))
    resp.risk_reason = "card_testing"
    assert seclink.canonical_response("authorize", resp) == v1 + tlv(15, b"card_testing")
    resp.pin_required = True
    both = seclink.canonical_response("authorize", resp)
    assert both == v1 + tlv(15, b"card_testing") + tlv(16, b"1")
    resp.risk_reason = ""
    assert seclink.canonical_response("authorize", resp) == v1 + tlv(16, b"1")


def test_response_field_lists_are_the_schemas():
    """A field added to an answer must be a decision (version 2), not silently unMAC'd."""
    for full_name, numbers in seclink.RESPONSE_FIELDS.items():
        name = full_name.rsplit(".", 1)[1]
        desc = (getattr(terminal_pb2, name, None) or getattr(common_pb2, name)).DESCRIPTOR
        schema = {f.number for f in desc.fields if f.name != "mac"}
        added = set(seclink.RESPONSE_FIELDS_ADDED.get(full_name, ()))
        assert set(numbers) | added == schema, full_name
        assert all(desc.fields_by_number[n].message_type is None for n in added)  # scalars


def _local(delta: dt.timedelta) -> str:
    return (dt.datetime.now(dt.UTC) + delta).strftime("%Y-%m-%dT%H:%M:%S")


def test_local_time_window_covers_every_zone_and_refuses_stale_times():
    now = dt.datetime.now(dt.UTC).timestamp()
    for hours in (-12, 0, 14):  # UTC-12 .. UTC+14 terminals
        validation.local_time(_local(dt.timedelta(hours=hours)), now=now, window_s=86400)
    for delta in (dt.timedelta(hours=-25), dt.timedelta(days=3), dt.timedelta(days=-400)):
        with pytest.raises(InvalidArgument) as err:
            validation.local_time(_local(delta), now=now, window_s=86400)
        assert err.value.field == "local_time"


def test_ksn_past_the_last_counter_is_refused():
    with pytest.raises(InvalidArgument) as err:
        validation.ksn(bytes(8) + (0xFFFF0001).to_bytes(4, "big"))
    assert err.value.field == "ksn" and "exhausted" in err.value.description
    assert validation.ksn(bytes(8) + (0xFFFF0000).to_bytes(4, "big")).counter == 0xFFFF0000
    with pytest.raises(InvalidArgument):
        validation.ksn(b"")


def test_topology_settings():
    topo = load(DEFAULT_TOPOLOGY)
    assert topo.switch.follow_ups == "same_terminal"
    assert topo.switch.local_time_window_s == 86400
    doc = {
        "switch": {"follow_ups": "same_merchant", "local_time_window_s": 100000},
        "merchants": [{"id": "M-1", "follow_ups": "same_terminal"}],
    }
    parsed = parse(doc)
    assert parsed.switch.follow_ups == "same_merchant"
    assert parsed.merchants[0].follow_ups == "same_terminal"
    for bad in (
        {"switch": {"follow_ups": "anyone"}},
        {"switch": {"local_time_window_s": 3600}},
        {"merchants": [{"id": "M-1", "follow_ups": "everyone"}]},
    ):
        with pytest.raises(TopologyError):
            parse(bad)
