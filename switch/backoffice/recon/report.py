"""Reconciliation issues as an aligned text table (amounts in major units with each
currency's own exponent: EUR 12.50, JPY 1250, KWD 1.250) and as JSON."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from payswitch.money import format_major, is_currency
from switch.domain.ledger import ReconIssue

_AMOUNTS = ("switch_minor", "acquirer_minor", "issuer_minor")
HEAD = ("ID", "STATUS", "TYPE", "KIND", "RRN", "TRANSACTION", "CUR", "SWITCH", "ACQUIRER",
        "ISSUER", "NOTE")  # fmt: skip
_RIGHT = {7, 8, 9}


def _amount(detail: dict[str, Any], name: str, currency: str) -> str:
    value = detail.get(name)
    if not isinstance(value, int):
        return ""
    return format_major(value, currency) if is_currency(currency) else str(value)


def render_text(issues: list[ReconIssue], *, count: bool = True) -> str:
    """The table; ``count``: with the "N issue(s)" line (a paged listing prints it once)."""
    rows: list[tuple[str, ...]] = [HEAD]
    for i in issues:
        detail = json.loads(i.detail or "{}")
        rows.append(
            (i.issue_id, i.status.value, i.type, i.kind, i.rrn, i.transaction_id, i.currency,
             *(_amount(detail, n, i.currency) for n in _AMOUNTS), i.note)
        )  # fmt: skip
    widths = [max(len(r[c]) for r in rows) for c in range(len(HEAD))]
    lines = [
        "  ".join(
            cell.rjust(w) if c in _RIGHT else cell.ljust(w)
            for c, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    if count:
        lines.append(f"{len(issues)} issue(s)")
    return "\n".join(lines)


def to_json(issues: list[ReconIssue]) -> str:
    docs = []
    for i in issues:
        doc = dataclasses.asdict(i)
        doc["detail"] = json.loads(i.detail or "{}")
        doc["status"] = i.status.value
        docs.append(doc)
    return json.dumps(docs, indent=2, sort_keys=True)
