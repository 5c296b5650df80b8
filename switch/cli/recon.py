"""``payswitch-recon``: run reconciliation, list issues, resolve them.

    payswitch-recon --store URL run --dir DIR [--books ISS1.db ...] [--topology T.toml]
                    [--cutoff UNIX_S] [--work-dir DIR] [--json | --summary]
    payswitch-recon --store URL list [--status OPEN|RESOLVED|IGNORED] [--json]
    payswitch-recon --store URL resolve ID --status RESOLVED|IGNORED --note TEXT

``--dir`` is the directory shared with the simulated network (settlement reports under
``settlement/<acquirer>/``); ``--topology`` supplies the ``[[fees]]`` table (fee checks are
skipped without it). ``run`` ends with one JSON line on stderr (``--summary``: on stdout,
instead of the issues): rows read per side, issues by type, seconds. ``--work-dir``: where the
run's scratch workspace goes (default: the system's temp folder). Exit status: 0, 1 when
``run`` found open issues, 2 on a refused command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payswitch.process import private_files
from switch.backoffice.recon.job import run as run_job
from switch.backoffice.recon.report import render_text, to_json
from switch.domain.errors import NotFound
from switch.domain.ledger import IssueStatus
from switch.store import open_store
from switch.store.base import Store
from switch.store.ledger import recon_issue_pages


@dataclass(frozen=True, slots=True)
class FeeRow:
    """One ``[[fees]]`` entry as ``fee_for`` reads it (attribute access only, so the table
    needs nothing of the settlement package's own config type)."""

    scheme: str
    mcc: str
    currency: str
    interchange_bps: int = 0
    interchange_fixed_minor: int = 0
    scheme_fee_bps: int = 0
    scheme_fee_fixed_minor: int = 0


def fee_table(doc: dict[str, Any]) -> list[FeeRow]:
    rows = []
    for i, entry in enumerate(doc.get("fees", [])):
        try:
            row = FeeRow(**{"mcc": "*", **entry})
        except TypeError as exc:
            raise ValueError(f"fees[{i}]: {exc}") from None
        for name in ("interchange_bps", "interchange_fixed_minor", "scheme_fee_bps",
                     "scheme_fee_fixed_minor"):  # fmt: skip
            value = getattr(row, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"fees[{i}].{name} must be a non-negative integer")
        rows.append(row)
    return rows


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="payswitch-recon", description=__doc__.split("\n")[0].split(": ", 1)[-1]
    )
    p.add_argument("--store", required=True, help="state store URL (as the switch's)")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dir", required=True)
    r.add_argument("--books", nargs="*", default=[], help="issuer books files (<id>.db)")
    r.add_argument("--topology", help="topology TOML with the [[fees]] table")
    r.add_argument("--cutoff", type=float, help="Unix s; later transactions are not expected")
    r.add_argument("--work-dir", help="folder for the run's scratch workspace")
    shape = r.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true")
    shape.add_argument("--summary", action="store_true", help="only the JSON summary line")
    ls = sub.add_parser("list")
    ls.add_argument("--status", choices=[s.value for s in IssueStatus])
    ls.add_argument("--json", action="store_true")
    rs = sub.add_parser("resolve")
    rs.add_argument("id")
    rs.add_argument("--status", required=True, choices=["RESOLVED", "IGNORED"])
    rs.add_argument("--note", required=True)
    return p


async def _list(store: Store, status: IssueStatus | None, as_json: bool) -> None:
    """Page by page (the issues are never held whole): a table per page, or one JSON array
    written as it is read; the count last."""
    shown = 0
    if as_json:
        print("[", end="")
    async for page in recon_issue_pages(store, status):
        if as_json:
            body = to_json(page).strip()[1:-1].strip()
            print((",\n" if shown else "\n") + body, end="")
        else:
            print(render_text(page, count=False))
        shown += len(page)
    print("\n]" if as_json and shown else "]" if as_json else f"{shown} issue(s)")


async def _main(args: argparse.Namespace) -> int:
    async with open_store(args.store) as store:
        if args.command == "run":
            result = await run_job(
                store,
                reports_dir=args.dir,
                books=args.books,
                fee_table=args.fee_table,
                cutoff=args.cutoff,
                work_dir=args.work_dir,
            )
            summary = json.dumps({"recon": result.summary()}, sort_keys=True)
            if args.summary:
                print(summary)
            else:
                print(to_json(result.found) if args.json else render_text(result.found))
                print(summary, file=sys.stderr)
            return 1 if any(i.status is IssueStatus.OPEN for i in result.found) else 0
        if args.command == "list":
            await _list(store, IssueStatus(args.status) if args.status else None, args.json)
            return 0
        issue = await store.recon_set_status(
            args.id, IssueStatus(args.status), args.note, time.time()
        )
        print(render_text([issue]))
        return 0


def main(argv: list[str] | None = None) -> int:
    private_files()
    args = _parser().parse_args(argv)
    try:
        args.fee_table = None
        if getattr(args, "topology", None):
            doc = tomllib.loads(Path(args.topology).read_text())
            args.fee_table = fee_table(doc)
        return asyncio.run(_main(args))
    except (NotFound, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
