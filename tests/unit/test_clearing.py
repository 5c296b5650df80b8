"""Clearing file payswitch-clearing/1 and settlement report payswitch-settlement/1."""

import json

import pytest

from payswitch.settlement.clearing import (
    FIELDS,
    ClearingFormatError,
    read_clearing_file,
    write_clearing_file,
)
from payswitch.settlement.report import ReportFormatError, build_report, read_report, write_report

CUTOFF = 1_800_000_000  # 2027-01-15 08:00 UTC


def rec(tx, kind="CAPTURE", amount=1250, cur="EUR", **kw):
    base = {
        "kind": kind,
        "transaction_id": tx,
        "rrn": "000000000001",
        "original_rrn": "",
        "terminal_id": "T-0001",
        "merchant_id": "M-GROCER",
        "scheme": "visa",
        "bin": "41111111",
        "masked_pan": "411111******1111",
        "card_token": "tok",
        "mcc": "5411",
        "amount_minor": amount,
        "currency": cur,
        "auth_code": "A1B2C3",
        "authorized_minor": amount,
        "captured_at": CUTOFF - 60,
        "batch_no": 1,
    }
    return {**base, **kw}


def test_the_file_is_header_presentments_trailer_per_currency(tmp_path):
    records = [rec("a"), rec("b", "REFUND", 500), rec("c", amount=1500, cur="JPY")]
    path = write_clearing_file(tmp_path, "acq-alpha", CUTOFF, 3, records, CUTOFF + 5)
    assert path == tmp_path / "clearing" / "acq-alpha" / "2027-01-15-0003.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {
        "record": "header",
        "format": "payswitch-clearing/1",
        "acquirer_id": "acq-alpha",
        "file_id": "acq-alpha-2027-01-15-0003",
        "cutoff_at": CUTOFF,
        "created_at": CUTOFF + 5,
    }
    assert [list(r)[1:] for r in lines[1:-1]] == [list(FIELDS)] * 3
    assert lines[-1] == {
        "record": "trailer",
        "count": 3,
        "totals": {
            "EUR": {"capture_minor": 1250, "refund_minor": 500},
            "JPY": {"capture_minor": 1500, "refund_minor": 0},
        },
    }
    assert read_clearing_file(path).presentments[2]["currency"] == "JPY"
    assert not list(path.parent.glob("*.tmp"))


def test_an_empty_file_still_has_header_and_trailer(tmp_path):
    path = write_clearing_file(tmp_path, "acq-beta", CUTOFF, 1, [], CUTOFF)
    cf = read_clearing_file(path)
    assert cf.presentments == () and cf.trailer == {"record": "trailer", "count": 0, "totals": {}}


@pytest.mark.parametrize(
    "bad",
    [
        {"masked_pan": "4111111111111111"},  # a clear PAN is refused
        {"amount_minor": 12.5},
        {"kind": "SALE"},
        {"currency": "EUX"},
    ],
)
def test_bad_records_are_refused_before_writing(tmp_path, bad):
    with pytest.raises(ClearingFormatError):
        write_clearing_file(tmp_path, "acq", CUTOFF, 1, [rec("x", **bad)], CUTOFF)
    assert not (tmp_path / "clearing").exists() or not list((tmp_path / "clearing").rglob("*"))


def test_a_tampered_trailer_is_detected(tmp_path):
    path = write_clearing_file(tmp_path, "acq", CUTOFF, 1, [rec("a")], CUTOFF)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1].replace("1250", "1251"), lines[2]]) + "\n")
    with pytest.raises(ClearingFormatError):
        read_clearing_file(path)


def entry(tx, kind="CAPTURE", amount=1000, cur="EUR", ic=2, sf=1, status="SETTLED"):
    return {
        "transaction_id": tx,
        "rrn": "1",
        "kind": kind,
        "amount_minor": amount,
        "currency": cur,
        "interchange_minor": ic,
        "scheme_fee_minor": sf,
        "status": status,
        "reason": "",
    }


def test_report_totals_gross_fees_net_per_currency(tmp_path):
    report = build_report(
        "acq",
        "acq-f1",
        CUTOFF,
        [
            entry("a", amount=1000),
            entry("b", "REFUND", 300, ic=0, sf=0),
            entry("c", amount=1500, cur="JPY", ic=15, sf=1),
            entry("d", amount=999, status="REJECTED"),
        ],
    )
    assert report["totals"] == {
        "EUR": {"gross_minor": 700, "fees_minor": 3, "net_minor": 697},
        "JPY": {"gross_minor": 1500, "fees_minor": 16, "net_minor": 1484},
    }
    path = write_report(tmp_path, report)
    assert path == tmp_path / "settlement" / "acq" / "acq-f1.json"
    assert read_report(path) == report
    report["totals"]["EUR"]["net_minor"] += 1
    path.write_text(json.dumps(report))
    with pytest.raises(ReportFormatError):
        read_report(path)
