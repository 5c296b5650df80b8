"""After a session of payments, no test PAN, PIN or CVV2 appears in anything the run wrote: the
logs of every node, the switch's store, the issuers' books (WAL files included), the terminal's
state and the demo's printout. The topology file, the simulator's card database, is the one
input that holds PANs and PINs and is left out; so are the SoftHSM token files (they live in the
test token's own directory, not in the run directory).

The session: every card paid plainly (and the home card captured and refunded), every card with
a PIN paid with its PIN and with a wrong one, every card with its CVV2 and a wrong one, chip sales
with their ARQC, then the whole ``make demo`` shift on a second terminal.

How the search works. A PAN (12-19 digits) cannot occur by chance, so every file is searched
for it byte by byte. A 3-digit CVV2 or a 4- to 6-digit PIN occurs by chance in any binary file
and in text too (a 6-digit PIN matched a log timestamp's microseconds, '.908172', in one run),
so for those the search reads the structure: every string in every JSON log line
(and every other log line as text), every text cell of every SQLite table (a JSON cell by its
strings, as a log line; a signed offline message by its fields less its integers), every
string field of
the stored answers (idempotency records, decoded as the protobuf they are), each a hit when the
secret stands alone (not inside a longer run of letters, digits, '.', ':', '/', '-', '_'). Binary
cells are cryptograms and ciphertexts (vault blobs, ARPCs), where any 3 digits occur by chance:
they are checked by their size instead (a vault blob has room for a PAN and nothing else).
"""

import asyncio
import io
import json
import re
import sqlite3
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.message import DecodeError, Message

from hsm import vault
from payswitch.offline.formats import ALLOWANCE_TAG, SPEND_TAG
from payswitch.v1 import terminal_pb2
from terminals import demo
from terminals.card_sim import CardSimulator

from .clients import code

pytestmark = pytest.mark.e2e

UNKNOWN_PAN = "4012888888881881"  # in bank-a's range, on no file
_BOUND = r"0-9A-Za-z.:/_\-"
_ANSWERS: dict[str, type[Message]] = {
    "authorize": terminal_pb2.AuthorizeResponse,
    "capture": terminal_pb2.CaptureResponse,
    "void": terminal_pb2.VoidResponse,
    "refund": terminal_pb2.RefundResponse,
    "close_batch": terminal_pb2.CloseBatchResponse,
}


def _cards(topology_path: Path) -> list[dict]:
    doc = tomllib.loads(topology_path.read_text())
    return [c for i in doc["issuers"] for c in i.get("cards", [])]


def _currency(pan: str) -> str:
    return "JPY" if pan.startswith("35") else ("USD" if pan.startswith("2223") else "EUR")


def _alone(secret: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![{_BOUND}]){re.escape(secret)}(?![{_BOUND}])")


def _message_fields(text: str) -> Iterator[str]:
    """A signed offline allowance or spend (``payswitch.offline.formats``: fields joined by '|'
    in a fixed order) by its fields less its integers (version, counters, amounts, caps,
    times: a spend of 900 matched a CVV2 of 900 in one CI run); any other string whole."""
    if text.startswith((ALLOWANCE_TAG + "|", SPEND_TAG + "|")):
        yield from (f for f in text.split("|") if not f.isdigit())
    else:
        yield text


def _strings(value: object) -> Iterator[str]:
    """Every string in a parsed JSON value (keys too); numbers are amounts, ids and timings."""
    if isinstance(value, str):
        yield from _message_fields(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _proto_strings(msg: Message) -> Iterator[str]:
    for _field, value in msg.ListFields():
        repeated = hasattr(value, "append")  # repeated fields are list-like containers
        for item in list(value) if repeated else [value]:
            if isinstance(item, Message):
                yield from _proto_strings(item)
            elif isinstance(item, str):
                yield item


def _text_strings(path: Path) -> Iterator[str]:
    for line in path.read_text(errors="replace").splitlines():
        try:
            yield from _strings(json.loads(line))
        except ValueError:
            yield line


def _cell_strings(cell: str) -> Iterator[str]:
    """A text cell; one holding a JSON document (a posting's lines, a case's evidence) by its
    strings, as a JSON log line is read: its numbers are amounts, where any 3 digits occur by
    chance (a CVV2 of 300 matched a ledger line's amount of 300 in one CI run); a dispute's
    evidence ("offline case <id>: <JSON>") by its text and the JSON's strings."""
    head, sep, rest = cell.partition(": ")
    for prefix, doc in (("", cell), (head + sep, rest)):  # also a dispute's "case <id>: {...}"
        if doc[:1] in "{[":
            try:
                parsed = json.loads(doc)
            except ValueError:
                continue
            yield prefix
            yield from _strings(parsed)
            return
    yield from _message_fields(cell)


def _db_strings(path: Path, problems: list[str]) -> Iterator[str]:
    conn = sqlite3.connect(path)  # WAL frames included; read only, the writers keep running
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cur = conn.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - names from the db
            names = [d[0] for d in cur.description]
            for row in cur:
                cells = dict(zip(names, row, strict=True))
                for name, cell in cells.items():
                    if isinstance(cell, str):
                        yield from _cell_strings(cell)
                    elif isinstance(cell, bytes) and cell:
                        yield from _blob_strings(table, name, cells, cell, problems)
    finally:
        conn.close()


def _blob_strings(
    table: str, column: str, row: dict, blob: bytes, problems: list[str]
) -> Iterator[str]:
    if table == "idempotency" and column == "response":
        try:
            yield from _proto_strings(_ANSWERS[row["operation"]].FromString(blob))
        except (KeyError, DecodeError):
            problems.append(f"undecodable answer in {table}")
    elif table == "vault" and column == "blob":
        if not vault.HEADER_LEN + 12 + vault.TAG_LEN <= len(blob) <= vault.HEADER_LEN + 35:
            problems.append("a vault blob with room for more than a PAN")


def _scan(run_dir: Path, topology_path: Path, extra_text: str, secrets: list[str]) -> dict:
    """Every file the run wrote, searched for every secret (see the module docstring)."""
    files = [p for p in run_dir.rglob("*") if p.is_file() and p.resolve() != topology_path]
    long_ones = [s for s in secrets if len(s) >= 12]  # PANs
    short = {s: _alone(s) for s in secrets}
    leaks: list[str] = []
    problems: list[str] = []
    for p in files:
        raw = p.read_bytes()
        leaks += [
            f"{s[:2]}.. ({len(s)} digits) in {p.name}" for s in long_ones if s.encode() in raw
        ]
        if p.suffix == ".db":
            strings = list(_db_strings(p, problems))
        elif p.name.endswith(("-wal", "-shm")):
            continue  # binary; their content is read through the .db (and searched raw above)
        else:
            strings = list(_text_strings(p))
        for s, pattern in short.items():
            if any(pattern.search(text) for text in strings):
                leaks.append(f"{s[:1]}.. ({len(s)} digits) in {p.name}")
    for s, pattern in short.items():
        if (s in long_ones and s in extra_text) or pattern.search(extra_text):
            leaks.append(f"{s[:1]}.. ({len(s)} digits) in the demo's printout")
    return {"names": [p.name for p in files], "leaks": sorted(set(leaks)), "problems": problems}


async def test_no_pan_pin_or_cvv2_in_anything_the_run_wrote(stack, pos):
    topology_path = stack.topology_path  # already resolved by Stack
    cards = await asyncio.to_thread(_cards, topology_path)
    chips = CardSimulator(stack.topology)
    secrets = [c["pan"] for c in cards] + [UNKNOWN_PAN]

    for c in cards:  # plain sales, and the home card's follow-ups
        resp = await pos.pay(c["pan"], 100, _currency(c["pan"]), c["expiry"])
        if code(resp) == "00" and c["pan"].startswith("4111"):
            await pos.capture(resp.transaction_id)
            await pos.refund(resp.transaction_id, 50)
    await pos.pay(UNKNOWN_PAN, 100)  # not on file: must not leak either

    for c in cards:  # PIN, CVV2 and chip, right and wrong
        pan, expiry, currency = c["pan"], c["expiry"], _currency(c["pan"])
        cvv2 = await chips.cvv2(pan)
        other_cvv2 = demo.wrong_cvv2(cvv2)
        secrets += [cvv2, other_cvv2]
        await pos.authorize(pos.auth_request(pan, 101, currency, expiry, cvv2=cvv2))
        await pos.authorize(pos.auth_request(pan, 102, currency, expiry, cvv2=other_cvv2))
        if "pin" in c:
            wrong = demo.wrong_pin(c["pin"])
            secrets += [c["pin"], wrong]
            for pin in (c["pin"], wrong):
                await pos.authorize(pos.auth_request(pan, 103, currency, expiry, pin=pin))
        if currency == "EUR" and c.get("status", "active") == "active":
            emv = await chips.arqc(pan, 104, currency)
            await pos.authorize(pos.auth_request(pan, 104, currency, expiry, emv=emv))

    out = io.StringIO()  # the demo shift, on a terminal of its own (its own STANs)
    argv = [
        "--topology",
        str(topology_path),
        "--switch",
        stack.address(stack.topology.switch.id),
        "--terminal",
        "T-0002",
        "--certs-dir",
        str(stack.certs_dir),
        "--state-dir",
        str(Path(stack.run_dir) / "terminal"),
    ]
    status = await demo.run(argv, out=out, cards=chips)
    printout = out.getvalue()
    assert status == 0, printout
    for step in ("PIN approval", "wrong PIN", "wrong CVV2", "chip sale, ARPC", "altered after MAC"):
        assert step in printout

    found = await asyncio.to_thread(
        _scan, Path(stack.run_dir), topology_path, printout, sorted(set(secrets))
    )
    assert any(n.endswith(".log") for n in found["names"])
    assert any(n.endswith(".db") for n in found["names"])
    assert any(n.endswith(".stan.json") for n in found["names"])
    assert found["problems"] == []
    assert found["leaks"] == []


def _modes(run_dir: Path) -> dict[str, int]:
    """The permission bits of every log, store, book and stand-in file under ``run_dir``."""
    return {
        str(p.relative_to(run_dir)): p.stat().st_mode & 0o777
        for p in run_dir.rglob("*")
        if p.is_file() and (p.suffix in (".log", ".stip") or ".db" in p.name or "books" in p.parts)
    }


async def test_what_the_switch_and_the_nodes_wrote_is_theirs_alone(stack, pos):
    """Logs, the switch's store, the issuers' books (WAL files included) and their stand-in
    files (PVVs) are created owner-only (0600): nobody else's on the host."""
    resp = await pos.pay("4111111111111111", 100, "EUR")
    assert code(resp) == "00"
    modes = await asyncio.to_thread(_modes, Path(stack.run_dir))
    assert any(name.endswith(".log") for name in modes)
    assert any(name.startswith("books") for name in modes)
    assert any(name.endswith(".stip") for name in modes)
    assert {name: oct(mode) for name, mode in modes.items() if mode & 0o077} == {}
