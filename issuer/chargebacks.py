"""The issuer raises chargebacks and answers representments; both go out as files.

Outgoing file (JSON lines, appended, one file per issuer per UTC day of the event):
``<dir>/chargebacks/<issuer_id>/<YYYY-MM-DD>.jsonl``, lines

- ``{"record": "chargeback", "chargeback_id", "issuer_id", "rrn", "amount_minor",
  "currency", "reason_code", "raised_at"}``
- ``{"record": "representment_response", "chargeback_id", "issuer_id", "accepted",
  "responded_at"}``

The books record it first (``Books.raise_chargeback`` credits the cardholder; an accepted
representment debits them again); a line already in the file is not written twice, so running
the command again is harmless. CLI: ``payswitch-chargeback raise|respond`` (``--help``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from issuer.books import Books
from payswitch.dispute_reasons import check_reason
from payswitch.money import parse_major
from payswitch.process import private_files


def outgoing_file(out_dir: str | Path, issuer_id: str, at: float) -> Path:
    day = datetime.fromtimestamp(at, UTC).date().isoformat()
    return Path(out_dir) / "chargebacks" / issuer_id / f"{day}.jsonl"


def _append_once(path: Path, record: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = (record["record"], record["chargeback_id"])
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                seen = json.loads(line)
                if (seen.get("record"), seen.get("chargeback_id")) == key:
                    return
    with path.open("a") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")


def raise_chargeback(
    books: Books,
    out_dir: str | Path,
    issuer_id: str,
    rrn: str,
    reason_code: str,
    *,
    amount_minor: int | None = None,
    raised_at: float | None = None,
    chargeback_id: str | None = None,
) -> dict[str, object]:
    """Record the chargeback in the books and write it out; returns the record written."""
    check_reason(reason_code)
    at = time.time() if raised_at is None else raised_at
    cb_id = chargeback_id or f"CB-{issuer_id}-{uuid.uuid4().hex[:12]}"
    view = books.raise_chargeback(cb_id, rrn, amount_minor, reason_code, at)
    record: dict[str, object] = {
        "record": "chargeback",
        "chargeback_id": view.chargeback_id,
        "issuer_id": issuer_id,
        "rrn": view.rrn,
        "amount_minor": view.amount,
        "currency": view.currency,
        "reason_code": view.reason_code,
        "raised_at": view.raised_at,
    }
    _append_once(outgoing_file(out_dir, issuer_id, view.raised_at), record)
    return record


def answer_representment(
    books: Books,
    out_dir: str | Path,
    issuer_id: str,
    chargeback_id: str,
    accept: bool,
    *,
    at: float | None = None,
) -> dict[str, object]:
    when = time.time() if at is None else at
    view = books.answer_representment(chargeback_id, accept, when)
    record: dict[str, object] = {
        "record": "representment_response",
        "chargeback_id": chargeback_id,
        "issuer_id": issuer_id,
        "accepted": view.state == "REVERSED",
        "responded_at": view.responded_at,
    }
    _append_once(outgoing_file(out_dir, issuer_id, view.responded_at), record)
    return record


def main(argv: list[str] | None = None) -> int:
    private_files()
    p = argparse.ArgumentParser(prog="payswitch-chargeback", description=__doc__.split("\n")[0])
    p.add_argument("--books", required=True, help="the issuer's books (<books_dir>/<id>.db)")
    p.add_argument("--dir", required=True, help="directory shared with the switch")
    p.add_argument("--issuer", required=True, help="issuer id")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("raise", help="charge back a posted sale")
    r.add_argument("--rrn", required=True)
    r.add_argument("--reason", required=True, help="reason code, e.g. 10.4 or 4837")
    r.add_argument("--amount", help="major units, e.g. 12.50 (default: all that is left)")
    r.add_argument("--id", help="chargeback id (default: generated)")
    a = sub.add_parser("respond", help="answer a representment")
    a.add_argument("--id", required=True)
    a.add_argument("--accept", action="store_true", help="accept (default: reject)")
    args = p.parse_args(argv)
    books = Books(args.books)
    try:
        if args.command == "raise":
            amount = None
            if args.amount:
                hold = books.hold(args.rrn)
                if hold is None:
                    raise ValueError(f"rrn: {args.rrn} is unknown")
                amount = parse_major(args.amount, hold.currency)
            record = raise_chargeback(
                books, args.dir, args.issuer, args.rrn, args.reason,
                amount_minor=amount, chargeback_id=args.id,
            )  # fmt: skip
        else:
            record = answer_representment(books, args.dir, args.issuer, args.id, args.accept)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        books.close()
    print(json.dumps(record, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
