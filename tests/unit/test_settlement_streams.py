"""The streaming clearing writer/reader and settlement report writer/reader (issue 17): what
they write equals the whole-file functions, a crash leaves no file that looks complete, a
report is read a page at a time in either version, and a bad file is refused naming why."""

from __future__ import annotations

import json

import pytest

from payswitch.settlement.clearing import (
    ClearingFormatError,
    ClearingWriter,
    check_clearing_file,
    discard_partial,
    iter_clearing_file,
    read_clearing_file,
    write_clearing_file,
)
from payswitch.settlement.report import (
    FORMAT_STREAM,
    ReportFormatError,
    ReportWriter,
    build_report,
    iter_report,
    read_report,
    write_report,
)

CUTOFF = 1_800_000_000


def rec(n: int, kind: str = "CAPTURE", cur: str = "EUR") -> dict:
    return {
        "kind": kind,
        "transaction_id": f"tx-{n}",
        "rrn": f"{n:012d}",
        "original_rrn": "",
        "terminal_id": "T-0001",
        "merchant_id": "M-GROCER",
        "scheme": "visa",
        "bin": "41111111",
        "masked_pan": "411111******1111",
        "card_token": "tok",
        "mcc": "5411",
        "amount_minor": 100 + n,
        "currency": cur,
        "auth_code": "A1B2C3",
        "authorized_minor": 100 + n,
        "captured_at": CUTOFF - 60,
        "batch_no": 1,
    }


def entry(n: int, status: str = "SETTLED", kind: str = "CAPTURE") -> dict:
    return {
        "transaction_id": f"tx-{n}",
        "rrn": f"{n:012d}",
        "kind": kind,
        "amount_minor": 100 + n,
        "currency": "EUR" if n % 2 else "JPY",
        "interchange_minor": 1,
        "scheme_fee_minor": 1,
        "status": status,
        "reason": "",
    }


def test_the_stream_writes_what_the_whole_file_writer_writes(tmp_path):
    records = [rec(n, "REFUND" if n % 5 == 0 else "CAPTURE", "JPY" if n % 3 else "EUR")
               for n in range(1, 50)]  # fmt: skip
    whole = write_clearing_file(tmp_path / "a", "acq", CUTOFF, 1, records, CUTOFF)
    writer = ClearingWriter(tmp_path / "b", "acq", CUTOFF, 1, CUTOFF)
    for r in records:
        writer.add(r)
    assert not writer.path.exists()  # not visible until finished
    streamed = writer.finish()
    assert streamed.read_bytes() == whole.read_bytes()
    lines = list(iter_clearing_file(streamed))
    assert lines[0]["file_id"] == "acq-2027-01-15-0001"
    assert lines[1:] == list(read_clearing_file(whole).presentments)
    assert check_clearing_file(streamed) == lines[0]


def test_a_crash_leaves_only_a_temporary_file_the_next_run_removes(tmp_path):
    writer = ClearingWriter(tmp_path, "acq", CUTOFF, 1, CUTOFF)
    writer.add(rec(1))  # ... and the process dies here: no finish
    folder = tmp_path / "clearing" / "acq"
    assert [p.name for p in folder.iterdir()] == ["2027-01-15-0001.jsonl.tmp"]
    assert not list(folder.glob("*.jsonl"))
    assert discard_partial(tmp_path) == 1
    assert not list(folder.iterdir())


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda ls: ls[:-1], "header and a trailer"),
        (lambda ls: [*ls[:1], *ls[2:]], "trailer count or totals"),
        (lambda ls: [ls[0].replace("clearing/1", "clearing/9"), *ls[1:]], "not a payswitch"),
        (lambda ls: [*ls, ls[1]], "last line is not the trailer"),
        (lambda ls: [ls[0], "{not json", *ls[1:]], "JSON lines"),
    ],
)
def test_a_bad_stream_is_refused_naming_why(tmp_path, mutate, why):
    path = write_clearing_file(tmp_path, "acq", CUTOFF, 1, [rec(1), rec(2)], CUTOFF)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(mutate(lines)) + "\n")
    with pytest.raises(ClearingFormatError, match=why):
        check_clearing_file(path)


def test_a_streamed_report_reads_back_in_pages_and_as_the_whole_document(tmp_path):
    entries = [entry(n, "REJECTED" if n % 7 == 0 else "SETTLED") for n in range(1, 30)]
    writer = ReportWriter(tmp_path, "acq", "acq-f1", CUTOFF)
    for e in entries:
        writer.add(e)
    path = writer.finish()
    assert json.loads(path.read_text().splitlines()[0])["format"] == FORMAT_STREAM
    assert writer.settled == 25 and writer.count == 29
    reader = iter_report(path)
    pages = []
    while page := reader.page(10):
        pages.append(page)
    assert [len(p) for p in pages] == [10, 10, 9]
    assert [e for p in pages for e in p] == entries
    whole = build_report("acq", "acq-f1", CUTOFF, [dict(e) for e in entries])
    assert reader.totals() == whole["totals"]
    assert read_report(path) == whole  # the /2 stream gathered as the /1 document


def test_a_version_1_report_is_read_in_pages_too(tmp_path):
    entries = [entry(n) for n in range(1, 6)]
    path = write_report(tmp_path, build_report("acq", "acq-f1", CUTOFF, entries))
    reader = iter_report(path)
    assert reader.page(3) == entries[:3] and reader.page(3) == entries[3:]
    assert reader.page(3) == []
    assert reader.totals() == build_report("acq", "x", CUTOFF, entries)["totals"]


def test_a_streamed_report_whose_totals_lie_is_refused(tmp_path):
    writer = ReportWriter(tmp_path, "acq", "acq-f1", CUTOFF)
    writer.add(entry(1))
    path = writer.finish()
    lines = path.read_text().splitlines()
    trailer = json.loads(lines[-1])
    trailer["totals"]["EUR"]["net_minor"] += 1
    path.write_text("\n".join([*lines[:-1], json.dumps(trailer)]) + "\n")
    reader = iter_report(path)
    reader.page(10)
    with pytest.raises(ReportFormatError, match="totals"):
        reader.totals()
    with pytest.raises(ReportFormatError, match="status"):
        ReportWriter(tmp_path, "acq", "acq-f2", CUTOFF).add(entry(2, status="MAYBE"))


def test_an_issuers_paged_report_is_joined_whole_at_the_last_page(tmp_path):
    from issuer.books_settlement import assemble_issuer_report, write_issuer_part

    posting = {"transaction_id": "t", "rrn": "1", "kind": "CAPTURE", "status": "POSTED"}
    write_issuer_part(tmp_path, "bank-a", "f1", 2, [{**posting, "rrn": "3"}])
    write_issuer_part(tmp_path, "bank-a", "f1", 1, [posting, {**posting, "rrn": "2"}])
    write_issuer_part(tmp_path, "bank-a", "f1", 2, [{**posting, "rrn": "3"}])  # presented again
    head = {"issuer_id": "bank-a", "file_id": "f1", "acquirer_id": "acq"}
    path = assemble_issuer_report(tmp_path, "bank-a", "f1", head)
    assert path == tmp_path / "issuer" / "bank-a" / "f1.json"
    doc = json.loads(path.read_text())
    assert doc["format"] == "payswitch-issuer-settlement/1" and doc["file_id"] == "f1"
    assert [p["rrn"] for p in doc["postings"]] == ["1", "2", "3"]
    assert not (tmp_path / "issuer" / "bank-a" / "parts" / "f1").exists()
    with pytest.raises(ValueError, match="leaves"):
        write_issuer_part(tmp_path, "bank-a", "../../x", 1, [posting])
