"""The clearing file (switch -> acquirer), format ``payswitch-clearing/1``: JSON lines.

One file per acquirer per cut-off: ``<dir>/clearing/<acquirer_id>/<cutoff_date>-<file_seq>.jsonl``
(``cutoff_date`` the UTC date of the cut-off, ``file_seq`` four digits from 0001, counting
that acquirer's files of the day). Line 1 is the header, then one ``presentment`` per captured
sale (amount: the captured amount) or approved refund, then the trailer:

    {"record":"header","format":"payswitch-clearing/1","acquirer_id":..,"file_id":..,
     "cutoff_at":<unix s>,"created_at":<unix s>}
    {"record":"presentment","kind":"CAPTURE"|"REFUND","transaction_id","rrn","original_rrn",
     "terminal_id","merchant_id","scheme","bin","masked_pan","card_token","mcc","amount_minor",
     "currency","auth_code","authorized_minor","captured_at","batch_no"}
    {"record":"trailer","count":N,"totals":{"<CUR>":{"capture_minor":..,"refund_minor":..}}}

A presentment of a converted sale (issue 16) also carries ``billing_minor`` (a capture's
billing amount captured, a refund's credited), ``billing_currency``, ``fx_rate`` and
``rate_table``; totals stay per transaction currency.
``rrn`` is the capture's authorization RRN or the refund's own RRN; ``original_rrn`` is a
refund's authorization RRN ("" for a capture). No PAN: the masked PAN and the card token only.
Totals are per currency and never add two currencies. The file is written as a stream to a
temporary name and renamed (``ClearingWriter``), so a reader never sees half a file; a reader
may stream it too (``iter_clearing_file``: header, presentments, trailer checked at the end).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payswitch.fx import FxError, parse_rate
from payswitch.money import is_currency
from payswitch.settlement.jsonlines import AtomicJsonLines

FORMAT = "payswitch-clearing/1"
KINDS = ("CAPTURE", "REFUND")
FIELDS = (
    "kind",
    "transaction_id",
    "rrn",
    "original_rrn",
    "terminal_id",
    "merchant_id",
    "scheme",
    "bin",
    "masked_pan",
    "card_token",
    "mcc",
    "amount_minor",
    "currency",
    "auth_code",
    "authorized_minor",
    "captured_at",
    "batch_no",
)
_INT_FIELDS = ("amount_minor", "authorized_minor", "batch_no")
FX_FIELDS = ("billing_minor", "billing_currency", "fx_rate", "rate_table")


class ClearingFormatError(ValueError):
    """A clearing file that is not payswitch-clearing/1, or whose trailer does not add up."""


@dataclass(frozen=True, slots=True)
class ClearingFile:
    header: dict[str, Any]
    presentments: tuple[dict[str, Any], ...]
    trailer: dict[str, Any]

    @property
    def file_id(self) -> str:
        file_id: str = self.header["file_id"]
        return file_id

    @property
    def acquirer_id(self) -> str:
        acquirer_id: str = self.header["acquirer_id"]
        return acquirer_id


def cutoff_date(cutoff_at: float) -> str:
    return dt.datetime.fromtimestamp(cutoff_at, dt.UTC).date().isoformat()


def file_path(directory: Path, acquirer_id: str, cutoff_at: float, file_seq: int) -> Path:
    name = f"{cutoff_date(cutoff_at)}-{file_seq:04d}.jsonl"
    return Path(directory) / "clearing" / acquirer_id / name


def file_id_of(acquirer_id: str, cutoff_at: float, file_seq: int) -> str:
    return f"{acquirer_id}-{cutoff_date(cutoff_at)}-{file_seq:04d}"


def check_presentment(record: dict[str, Any]) -> None:
    missing = [f for f in FIELDS if f not in record]
    if missing:
        raise ClearingFormatError(f"presentment lacks {missing}")
    if record["kind"] not in KINDS:
        raise ClearingFormatError(f"presentment kind {record['kind']!r}")
    for name in _INT_FIELDS:
        value = record[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ClearingFormatError(f"presentment {name} must be a non-negative integer")
    if not is_currency(record["currency"]):
        raise ClearingFormatError(f"presentment currency {record['currency']!r}")
    if "billing_currency" in record:
        if not all(f in record for f in FX_FIELDS) or not is_currency(record["billing_currency"]):
            raise ClearingFormatError("presentment billing fields incomplete")
        b = record["billing_minor"]
        if not isinstance(b, int) or isinstance(b, bool) or b < 0:
            raise ClearingFormatError("presentment billing_minor must be a non-negative integer")
        try:
            parse_rate(record["fx_rate"])
        except FxError:
            raise ClearingFormatError("presentment fx_rate is not a rate") from None
    masked = record["masked_pan"]
    if any(ch.isdigit() for ch in masked[6:-4]):
        raise ClearingFormatError("presentment masked_pan is not masked")


def totals(presentments: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per currency: capture and refund sums (never across currencies)."""
    out: dict[str, dict[str, int]] = {}
    for p in presentments:
        line = out.setdefault(p["currency"], {"capture_minor": 0, "refund_minor": 0})
        key = "capture_minor" if p["kind"] == "CAPTURE" else "refund_minor"
        line[key] += p["amount_minor"]
    return dict(sorted(out.items()))


class ClearingWriter:
    """One acquirer's clearing file written as a stream (issue 17: a million presentments
    never sit in a list): the header at open, ``add`` appends each checked presentment to a
    temporary file while the trailer's count and totals accumulate, ``finish`` writes the
    trailer, fsyncs and renames. Until ``finish`` the file has its temporary name, so a crash
    leaves nothing that looks like a complete clearing file (``discard_partial`` removes it)."""

    def __init__(
        self,
        directory: Path,
        acquirer_id: str,
        cutoff_at: float,
        file_seq: int,
        created_at: float,
    ) -> None:
        self._out = AtomicJsonLines(
            file_path(directory, acquirer_id, cutoff_at, file_seq), ".jsonl.tmp"
        )
        self.path = self._out.path
        self.count = 0
        self._totals: dict[str, dict[str, int]] = {}
        header = {
            "record": "header",
            "format": FORMAT,
            "acquirer_id": acquirer_id,
            "file_id": file_id_of(acquirer_id, cutoff_at, file_seq),
            "cutoff_at": int(cutoff_at),
            "created_at": int(created_at),
        }
        self._line(header)

    def _line(self, doc: dict[str, Any]) -> None:
        self._out.write(doc)

    def add(self, presentment: dict[str, Any]) -> None:
        """Append one presentment (checked first: a bad one raises and is not written)."""
        check_presentment(presentment)
        p = presentment
        self._line({"record": "presentment", **{f: p[f] for f in (*FIELDS, *FX_FIELDS) if f in p}})
        line = self._totals.setdefault(p["currency"], {"capture_minor": 0, "refund_minor": 0})
        line["capture_minor" if p["kind"] == "CAPTURE" else "refund_minor"] += p["amount_minor"]
        self.count += 1

    def finish(self) -> Path:
        """Trailer, fsync, rename: the file is complete and visible under its name."""
        totals_ = dict(sorted(self._totals.items()))
        self._line({"record": "trailer", "count": self.count, "totals": totals_})
        return self._out.commit()

    def abort(self) -> None:
        """Drop the unfinished file."""
        self._out.abort()


def discard_partial(directory: Path) -> int:
    """Remove the temporary files a crashed run left in the clearing folders (their batches
    are still CLOSED and go into the next file); how many."""
    gone = 0
    for tmp in (Path(directory) / "clearing").glob("*/*.jsonl.tmp"):
        tmp.unlink(missing_ok=True)
        gone += 1
    return gone


def write_clearing_file(
    directory: Path,
    acquirer_id: str,
    cutoff_at: float,
    file_seq: int,
    presentments: Iterable[dict[str, Any]],
    created_at: float,
) -> Path:
    """Write one acquirer's clearing file; returns its path. A list is checked whole before
    anything is created; a stream as it goes (a bad record: no file, the temporary removed)."""
    if isinstance(presentments, list | tuple):
        for p in presentments:
            check_presentment(p)
    writer = ClearingWriter(directory, acquirer_id, cutoff_at, file_seq, created_at)
    try:
        for p in presentments:
            writer.add(p)
    except BaseException:
        writer.abort()
        raise
    return writer.finish()


def iter_clearing_file(path: Path) -> Iterator[dict[str, Any]]:
    """The file's lines as a stream: the header first (checked), then each presentment
    (checked); the trailer is checked against the running count and totals at the end, so
    a consumer acts on presentments before the file is known whole: it must be idempotent
    per presentment (the issuer is) and treat the ``ClearingFormatError`` at the end as
    \"this file is bad\"."""
    try:
        fh = Path(path).open(encoding="utf-8")
    except OSError:
        raise ClearingFormatError("cannot read clearing file") from None
    with fh:
        count = 0
        running: dict[str, dict[str, int]] = {}
        trailer: dict[str, Any] | None = None
        header = False
        try:
            for text in fh:
                if not text.strip():
                    continue
                try:
                    doc = json.loads(text)
                except json.JSONDecodeError:
                    raise ClearingFormatError("not a clearing file (JSON lines)") from None
                if trailer is not None:
                    raise ClearingFormatError("the last line is not the trailer")
                if not header:
                    if doc.get("record") != "header" or doc.get("format") != FORMAT:
                        raise ClearingFormatError(f"not a {FORMAT} file")
                    header = True
                    yield doc
                    continue
                if doc.get("record") == "trailer":
                    trailer = doc
                    continue
                if doc.get("record") != "presentment":
                    raise ClearingFormatError("only presentments between header and trailer")
                check_presentment(doc)
                line = running.setdefault(doc["currency"], {"capture_minor": 0, "refund_minor": 0})
                key = "capture_minor" if doc["kind"] == "CAPTURE" else "refund_minor"
                line[key] += doc["amount_minor"]
                count += 1
                yield doc
        except UnicodeDecodeError:
            raise ClearingFormatError("cannot read clearing file") from None
    if trailer is None:
        raise ClearingFormatError("a clearing file has a header and a trailer")
    if trailer.get("count") != count or trailer.get("totals") != dict(sorted(running.items())):
        raise ClearingFormatError("trailer count or totals do not match the presentments")


def check_clearing_file(path: Path) -> dict[str, Any]:
    """Check a whole clearing file as a stream (nothing held but running totals); its
    header."""
    records = iter_clearing_file(path)
    header = next(records, None)
    for _ in records:
        pass
    if header is None:
        raise ClearingFormatError("a clearing file has a header and a trailer")
    return header


def read_clearing_file(path: Path) -> ClearingFile:
    """Parse and check a clearing file: header format, records, trailer count and totals."""
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        # The same words whatever the cause (missing, a folder, no permission): the answer
        # must not tell a caller what exists on the node's disk.
        raise ClearingFormatError("cannot read clearing file") from None
    try:
        lines = [json.loads(line) for line in text.splitlines() if line]
    except json.JSONDecodeError:
        raise ClearingFormatError("not a clearing file (JSON lines)") from None
    if len(lines) < 2:
        raise ClearingFormatError("a clearing file has a header and a trailer")
    header, *body, trailer = lines
    if header.get("record") != "header" or header.get("format") != FORMAT:
        raise ClearingFormatError(f"not a {FORMAT} file")
    if trailer.get("record") != "trailer":
        raise ClearingFormatError("the last line is not the trailer")
    for record in body:
        if record.get("record") != "presentment":
            raise ClearingFormatError("only presentments between header and trailer")
        check_presentment(record)
    if trailer.get("count") != len(body) or trailer.get("totals") != totals(body):
        raise ClearingFormatError("trailer count or totals do not match the presentments")
    return ClearingFile(header, tuple(body), trailer)
