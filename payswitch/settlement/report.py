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
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from payswitch import fx

FORMAT = "payswitch-settlement/1"
STATUSES = ("SETTLED", "REJECTED")


class ReportFormatError(ValueError):
    pass


def report_path(directory: Path, acquirer_id: str, file_id: str) -> Path:
    return Path(directory) / "settlement" / acquirer_id / f"{file_id}.json"


def totals(entries: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for e in entries:
        if e["status"] != "SETTLED":
            continue
        line = out.setdefault(e["currency"], {"gross_minor": 0, "fees_minor": 0, "net_minor": 0})
        sign = 1 if e["kind"] == "CAPTURE" else -1
        fees = e["interchange_minor"] + e["scheme_fee_minor"]
        line["gross_minor"] += sign * e["amount_minor"]
        line["fees_minor"] += fees
        line["net_minor"] += sign * e["amount_minor"] - fees
    return dict(sorted(out.items()))


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
        if e["status"] != "SETTLED":
            continue
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
    return dict(sorted(out.items()))


def billing_totals(entries: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per billing currency, over SETTLED converted entries: what the issuers posted."""
    out: dict[str, dict[str, int]] = {}
    for e in entries:
        if e["status"] != "SETTLED" or not e.get("billing_currency"):
            continue
        line = out.setdefault(e["billing_currency"], {"issuer_posted_minor": 0})
        sign = 1 if e["kind"] == "CAPTURE" else -1
        line["issuer_posted_minor"] += sign * e["issuer_posted_minor"]
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


def read_report(path: Path) -> dict[str, Any]:
    try:
        report: dict[str, Any] = json.loads(Path(path).read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportFormatError(f"cannot read settlement report: {exc}") from None
    if report.get("format") != FORMAT:
        raise ReportFormatError(f"not a {FORMAT} document")
    for e in report.get("entries", []):
        if e.get("status") not in STATUSES:
            raise ReportFormatError(f"entry status {e.get('status')!r}")
    if report.get("totals") != totals(report.get("entries", [])):
        raise ReportFormatError("report totals do not match its entries")
    return report
