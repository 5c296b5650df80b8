"""The settlement report (acquirer -> switch), format ``payswitch-settlement/1``: one JSON
document per clearing file at ``<dir>/settlement/<acquirer_id>/<file_id>.json``:

    {"format":"payswitch-settlement/1","acquirer_id","file_id","settled_at",
     "entries":[{"transaction_id","rrn","kind","amount_minor","currency","interchange_minor",
                 "scheme_fee_minor","status":"SETTLED"|"REJECTED","reason"}],
     "totals":{"<CUR>":{"gross_minor","fees_minor","net_minor"}}}

Per currency, over SETTLED entries: ``gross`` = captures - refunds, ``fees`` = interchange +
scheme fees, ``net`` = gross - fees (what the merchant is paid). The acquirer settles in each
entry's transaction currency. An entry of a converted sale (issue 16) also has
``billing_minor``, ``billing_currency``, ``fx_rate`` (the switch's record) and
``issuer_posted_minor`` (what the issuer posted in the billing currency: the issuer settles in
its account's currency); ``billing_totals`` sums the latter per billing currency (captures -
refunds), for the issuers' side. An acquirer with a ``settlement_currency`` settles every
entry in it: ``settlement_net_minor``/``settlement_currency``/``settlement_rate`` per entry,
``settlement_totals`` per currency (``settle_in``). ``reason`` is "" or the
issuer's flags joined by "," (e.g. LATE_PRESENTMENT) or, for REJECTED, why.

Written as a stream (issue 17: a million entries never sit in a list), ``ReportWriter`` gives
``payswitch-settlement/2`` at the same path: JSON lines, the header (``format``, ``acquirer_id``,
``file_id``, ``settled_at``), one ``{"record":"entry",...}`` per entry, then the trailer
(``count``, ``totals``, ``billing_totals`` and, for one settlement currency,
``settlement_totals``); written to a temporary name and renamed. ``iter_report`` reads either
version a page at a time; ``read_report`` gives either as the /1 document.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from payswitch import fx
from payswitch.settlement.jsonlines import AtomicJsonLines

FORMAT = "payswitch-settlement/1"
FORMAT_STREAM = "payswitch-settlement/2"
STATUSES = ("SETTLED", "REJECTED")


class ReportFormatError(ValueError):
    pass


def report_path(directory: Path, acquirer_id: str, file_id: str) -> Path:
    return Path(directory) / "settlement" / acquirer_id / f"{file_id}.json"


def totals(entries: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for e in entries:
        add_total(out, e)
    return dict(sorted(out.items()))


def add_total(out: dict[str, dict[str, int]], e: dict[str, Any]) -> None:
    """Add one entry to running ``totals``."""
    if e["status"] != "SETTLED":
        return
    line = out.setdefault(e["currency"], {"gross_minor": 0, "fees_minor": 0, "net_minor": 0})
    sign = 1 if e["kind"] == "CAPTURE" else -1
    fees = e["interchange_minor"] + e["scheme_fee_minor"]
    line["gross_minor"] += sign * e["amount_minor"]
    line["fees_minor"] += fees
    line["net_minor"] += sign * e["amount_minor"] - fees


def add_billing_total(out: dict[str, dict[str, int]], e: dict[str, Any]) -> None:
    """Add one entry to running ``billing_totals``."""
    if e["status"] != "SETTLED" or not e.get("billing_currency"):
        return
    line = out.setdefault(e["billing_currency"], {"issuer_posted_minor": 0})
    sign = 1 if e["kind"] == "CAPTURE" else -1
    line["issuer_posted_minor"] += sign * e["issuer_posted_minor"]


def build_report(
    acquirer_id: str, file_id: str, settled_at: float, entries: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "acquirer_id": acquirer_id,
        "file_id": file_id,
        "settled_at": int(settled_at),
        "entries": entries,
        "totals": totals(entries),
        "billing_totals": billing_totals(entries),
    }


def settle_in(
    entries: list[dict[str, Any]],
    currency: str,
    rate_of: Callable[[dict[str, Any]], Decimal | None],
) -> dict[str, dict[str, int]]:
    """An acquirer that settles in one ``currency`` (issue 16): each SETTLED entry gets
    ``settlement_net_minor`` (its signed net, gross - fees, converted half-up at
    ``rate_of(entry)``: its scheme's rate into ``currency`` on the settlement day),
    ``settlement_currency`` and ``settlement_rate``; returns ``settlement_totals``. An entry
    whose pair has no rate stays in its own currency (and its own totals line)."""
    out: dict[str, dict[str, int]] = {}
    for e in entries:
        settle_entry_in(e, currency, rate_of, out)
    return dict(sorted(out.items()))


def settle_entry_in(
    e: dict[str, Any],
    currency: str,
    rate_of: Callable[[dict[str, Any]], Decimal | None],
    out: dict[str, dict[str, int]],
) -> None:
    """``settle_in`` for one entry, adding to the running ``settlement_totals`` ``out``."""
    if e["status"] != "SETTLED":
        return
    sign = 1 if e["kind"] == "CAPTURE" else -1
    net = sign * e["amount_minor"] - e["interchange_minor"] - e["scheme_fee_minor"]
    rate = Decimal(1) if e["currency"] == currency else rate_of(e)
    target = currency if rate is not None else e["currency"]
    settled = net if rate is None else fx.convert(net, e["currency"], target, rate)
    e["settlement_net_minor"] = settled
    e["settlement_currency"] = target
    e["settlement_rate"] = fx.format_rate(rate if rate is not None else Decimal(1))
    line = out.setdefault(target, {"net_minor": 0})
    line["net_minor"] += settled


def billing_totals(entries: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per billing currency, over SETTLED converted entries: what the issuers posted."""
    out: dict[str, dict[str, int]] = {}
    for e in entries:
        add_billing_total(out, e)
    return dict(sorted(out.items()))


def write_report(directory: Path, report: dict[str, Any]) -> Path:
    path = report_path(directory, report["acquirer_id"], report["file_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    return path


class ReportWriter:
    """A settlement report written as a stream (``payswitch-settlement/2``): ``add`` each
    entry (its totals accumulate), ``finish`` writes the trailer, fsyncs and renames it into
    place (a crash leaves only the temporary file: the clearing file stays unsettled)."""

    def __init__(self, directory: Path, acquirer_id: str, file_id: str, settled_at: float) -> None:
        self._out = AtomicJsonLines(
            report_path(directory, acquirer_id, file_id), ".json.tmp", sort_keys=True
        )
        self.path = self._out.path
        self.count = 0
        self.settled = 0
        self.totals: dict[str, dict[str, int]] = {}
        self.billing_totals: dict[str, dict[str, int]] = {}
        self.settlement_totals: dict[str, dict[str, int]] | None = None
        header = {
            "record": "header",
            "format": FORMAT_STREAM,
            "acquirer_id": acquirer_id,
            "file_id": file_id,
            "settled_at": int(settled_at),
        }
        self._line(header)

    def _line(self, doc: dict[str, Any]) -> None:
        self._out.write(doc)

    def add(self, entry: dict[str, Any]) -> None:
        if entry.get("status") not in STATUSES:
            raise ReportFormatError(f"entry status {entry.get('status')!r}")
        self._line({"record": "entry", **entry})
        add_total(self.totals, entry)
        add_billing_total(self.billing_totals, entry)
        self.count += 1
        self.settled += entry["status"] == "SETTLED"

    def finish(self) -> Path:
        trailer: dict[str, Any] = {
            "record": "trailer",
            "count": self.count,
            "totals": dict(sorted(self.totals.items())),
            "billing_totals": dict(sorted(self.billing_totals.items())),
        }
        if self.settlement_totals is not None:
            trailer["settlement_totals"] = dict(sorted(self.settlement_totals.items()))
        self._line(trailer)
        return self._out.commit()

    def abort(self) -> None:
        self._out.abort()


class ReportEntries:
    """A report's entries a page at a time, either version (``iter_report``): ``header`` is
    the document without its entries; after the last page, ``totals()`` is the report's
    totals, checked against its entries (ReportFormatError otherwise)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._running: dict[str, dict[str, int]] = {}
        self._count = 0
        self._trailer: dict[str, Any] | None = None
        self._lines: Iterator[str] | None = None
        self._entries: Iterator[dict[str, Any]]
        try:
            self._fh = self.path.open(encoding="utf-8")
            first = self._fh.readline()
            doc = json.loads(first) if first.strip() else {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            self._whole()  # a /1 document over several lines (indented)
            return
        if doc.get("format") == FORMAT_STREAM and doc.get("record") == "header":
            self.header = {k: v for k, v in doc.items() if k != "record"}
            self._entries = self._stream()
        else:
            self._whole()

    def _whole(self) -> None:
        fh = getattr(self, "_fh", None)
        if fh is not None:
            fh.close()
        doc = read_report(self.path)
        entries = doc.pop("entries")
        self.header = doc
        self._trailer = {"count": len(entries), **doc}
        self._entries = iter(entries)

    def _stream(self) -> Iterator[dict[str, Any]]:
        with self._fh:
            for text in self._fh:
                if not text.strip():
                    continue
                try:
                    doc = json.loads(text)
                except json.JSONDecodeError:
                    raise ReportFormatError(f"{self.path.name}: not JSON lines") from None
                if self._trailer is not None:
                    raise ReportFormatError("the last line is not the trailer")
                kind = doc.pop("record", None)
                if kind == "trailer":
                    self._trailer = doc
                    continue
                if kind != "entry" or doc.get("status") not in STATUSES:
                    raise ReportFormatError(f"entry status {doc.get('status')!r}")
                yield doc

    def page(self, size: int) -> list[dict[str, Any]]:
        """Up to ``size`` next entries; [] at the end."""
        out: list[dict[str, Any]] = []
        for e in self._entries:
            add_total(self._running, e)
            self._count += 1
            out.append(e)
            if len(out) >= size:
                break
        return out

    def totals(self) -> dict[str, dict[str, int]]:
        if self._trailer is None:
            raise ReportFormatError("settlement report has no trailer")
        if self._trailer.get("count") != self._count or self._trailer.get("totals") != dict(
            sorted(self._running.items())
        ):
            raise ReportFormatError("report totals do not match its entries")
        totals_: dict[str, dict[str, int]] = self._trailer["totals"]
        return totals_


def iter_report(path: Path) -> ReportEntries:
    """Open a report (either version) for reading a page at a time."""
    return ReportEntries(path)


def read_report(path: Path, *, check_totals: bool = True) -> dict[str, Any]:
    """The whole report as the /1 document (a /2 stream gathered: small reports only, e.g.
    tests and reconciliation of a few files). ``check_totals=False``: a /1 document's totals
    are not checked against its entries (reconciliation reports such a difference itself)."""
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportFormatError(f"cannot read settlement report: {exc}") from None
    first = text.split("\n", 1)[0]
    try:
        head = json.loads(first) if first.strip() else {}
    except json.JSONDecodeError:
        head = {}
    if isinstance(head, dict) and head.get("format") == FORMAT_STREAM:
        return _gather(Path(path))
    try:
        report: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportFormatError(f"cannot read settlement report: {exc}") from None
    if report.get("format") != FORMAT:
        raise ReportFormatError(f"not a {FORMAT} document")
    for e in report.get("entries", []):
        if e.get("status") not in STATUSES:
            raise ReportFormatError(f"entry status {e.get('status')!r}")
    if check_totals and report.get("totals") != totals(report.get("entries", [])):
        raise ReportFormatError("report totals do not match its entries")
    return report


def _gather(path: Path) -> dict[str, Any]:
    reader = ReportEntries(path)
    entries: list[dict[str, Any]] = []
    while page := reader.page(10_000):
        entries += page
    reader.totals()
    trailer = reader._trailer or {}
    doc = {**reader.header, "format": FORMAT, "entries": entries}
    for key in ("totals", "billing_totals", "settlement_totals"):
        if key in trailer:
            doc[key] = trailer[key]
    return doc
