"""The waterfall command's tree: by RRN or transaction id, indented by parent, only the tree of
the request asked for when another request reused its trace id, and lines that do not parse
skipped."""

from __future__ import annotations

import json

import pytest

from payswitch import waterfall

T = "4bf92f3577b34da6a3ce929d0e0e4736"


def _span(span_id, parent, name, service, start_ms, dur_ms, trace_id=T, **attrs):
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_id": parent,
        "name": name,
        "kind": "internal",
        "service": service,
        "pid": 1,
        "start_ns": int(start_ms * 1e6),
        "end_ns": int((start_ms + dur_ms) * 1e6),
        "status": "unset",
        "attrs": {f"payswitch.{k}": v for k, v in attrs.items()},
    }


def _write(tmp_path, records, name="a.jsonl"):
    folder = tmp_path / "traces"
    folder.mkdir(exist_ok=True)
    with (folder / name).open("a") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    return folder


SALE = [
    _span("a" * 16, None, "terminal.pay", "terminal", 0, 20, rrn="000000000007"),
    _span("b" * 16, "a" * 16, "authorize", "switch", 1, 18, rrn="000000000007", tx_id="TX7"),
    _span("c" * 16, "b" * 16, "verify", "switch", 2, 3),
    _span("d" * 16, "c" * 16, "hsm verify_job", "switch", 2.5, 2),
    _span("e" * 16, "b" * 16, "forward", "switch", 6, 12),
]
# Another request that sent the same trace id (a terminal may choose any).
INTRUDER = [
    _span("f" * 16, None, "terminal.pay", "terminal", 5, 9, rrn="000000000008"),
    _span("1" * 16, "f" * 16, "authorize", "switch", 6, 8, rrn="000000000008"),
]


def test_tree_by_rrn_and_by_tx_is_the_same_indented_by_parent(tmp_path):
    folder = _write(tmp_path, SALE[2:])
    _write(tmp_path, SALE[:2], "b.jsonl")
    spans = waterfall.load(folder)
    [by_rrn] = waterfall.find(spans, rrn="000000000007")
    [by_tx] = waterfall.find(spans, tx="TX7")
    assert by_rrn == by_tx
    assert [s.name for s in by_rrn] == [
        "terminal.pay",
        "authorize",
        "verify",
        "hsm verify_job",
        "forward",
    ]
    assert waterfall.depths(by_rrn) == [0, 1, 2, 3, 2]
    text = waterfall.render(by_rrn).splitlines()
    assert "5 spans, 2 processes, 20.00 ms" in text[0]
    assert text[4].endswith("|      verify")
    assert text[5].endswith("|        hsm verify_job")
    assert text[5].startswith("     2.50     2.00  switch  ")


def test_a_reused_trace_id_does_not_mix_two_requests(tmp_path):
    folder = _write(tmp_path, SALE + INTRUDER)
    [tree] = waterfall.find(waterfall.load(folder), rrn="000000000007")
    assert {s.span_id for s in tree} == {s["span_id"] for s in SALE}
    [other] = waterfall.find(waterfall.load(folder), rrn="000000000008")
    assert {s.span_id for s in other} == {s["span_id"] for s in INTRUDER}


def test_unparsable_lines_are_skipped_and_nothing_found_is_empty(tmp_path):
    folder = _write(tmp_path, SALE)
    with (folder / "a.jsonl").open("a") as fh:
        fh.write('{"trace_id": "x", "span_i')  # killed mid-write
    assert len(waterfall.load(folder)) == len(SALE)
    assert waterfall.find(waterfall.load(folder), rrn="999") == []


def test_command_line_exits_1_when_nothing_matches(tmp_path, capsys):
    _write(tmp_path, SALE)
    with pytest.raises(SystemExit) as exit_:
        waterfall.main(["--run-dir", str(tmp_path), "--rrn", "nope"])
    assert "no trace" in str(exit_.value.code)
    waterfall.main(["--run-dir", str(tmp_path), "--tx", "TX7", "--json"])
    [tree] = json.loads(capsys.readouterr().out)
    assert [s["depth"] for s in tree["spans"]] == [0, 1, 2, 3, 2]
