"""``payswitch-dispute``: the switch's side of the dispute cycle, for operators and merchants.

    payswitch-dispute --store URL ingest --dir DIR     # read the issuers' chargeback files
    payswitch-dispute --store URL list [--state S] [--json]
    payswitch-dispute --store URL represent ID --evidence TEXT
    payswitch-dispute --store URL accept ID [--note TEXT]
    payswitch-dispute --store URL resolve ID --won|--lost [--note TEXT]
    payswitch-dispute --store URL expire               # apply missed deadlines

Every command first applies missed deadlines and posts any ledger entry a state implies but
lacks (``Disputes.sync_postings``). Exit status 2 for a refused step, with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys

from payswitch.money import format_major
from payswitch.process import private_files
from switch.backoffice.disputes.service import DisputeRejected, Disputes
from switch.domain.errors import NotFound
from switch.domain.ledger import Dispute, DisputeConflict, DisputeState
from switch.store import open_store
from switch.store.base import Store
from switch.store.ledger import dispute_pages


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="payswitch-dispute", description=__doc__.split("\n")[0].split(": ", 1)[-1]
    )
    p.add_argument("--store", required=True, help="state store URL (as the switch's)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("ingest").add_argument("--dir", required=True, help="shared files directory")
    ls = sub.add_parser("list")
    ls.add_argument("--state", choices=[s.value for s in DisputeState])
    ls.add_argument("--json", action="store_true")
    rp = sub.add_parser("represent")
    rp.add_argument("id")
    rp.add_argument("--evidence", required=True)
    ac = sub.add_parser("accept")
    ac.add_argument("id")
    ac.add_argument("--note", default="")
    rs = sub.add_parser("resolve")
    rs.add_argument("id")
    side = rs.add_mutually_exclusive_group(required=True)
    side.add_argument("--won", action="store_true")
    side.add_argument("--lost", action="store_true")
    rs.add_argument("--note", default="")
    sub.add_parser("expire")
    return p


def render(disputes: list[Dispute]) -> str:
    head = ("ID", "STATE", "RRN", "AMOUNT", "CUR", "REASON", "MERCHANT", "DUE")
    rows = [head]
    for d in disputes:
        due = d.representment_due if d.state is DisputeState.CHARGEBACK else d.response_due
        rows.append(
            (d.dispute_id, d.state.value, d.rrn, format_major(d.amount_minor, d.currency),
             d.currency, d.reason_code, d.merchant_id, f"{due:.0f}" if due else "")
        )  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(
            c.rjust(w) if i == 3 else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    )


async def _list(store: Store, state: DisputeState | None, as_json: bool) -> None:
    """Page by page (a day of disputes is never held whole): a table per page, or one JSON
    array written as it is read."""
    shown = 0
    if as_json:
        print("[", end="")
    async for page in dispute_pages(store, state):
        if as_json:
            for d in page:
                text = json.dumps(dataclasses.asdict(d), sort_keys=True, default=str)
                print((", " if shown else "") + text, end="")
                shown += 1
        else:
            print(render(page))
            shown += len(page)
    if as_json:
        print("]")
    elif not shown:
        print(render([]))


async def run(args: argparse.Namespace) -> int:
    async with open_store(args.store) as store:
        disputes = Disputes(store)
        expired = await disputes.expire()
        await disputes.sync_postings()
        out: object
        if args.command == "ingest":
            out = dataclasses.asdict(await disputes.ingest_dir(args.dir))
        elif args.command == "list":
            await _list(store, DisputeState(args.state) if args.state else None, args.json)
            return 0
        elif args.command == "represent":
            out = dataclasses.asdict(await disputes.represent(args.id, args.evidence))
        elif args.command == "accept":
            out = dataclasses.asdict(await disputes.accept(args.id, args.note))
        elif args.command == "resolve":
            out = dataclasses.asdict(await disputes.resolve(args.id, args.won, args.note))
        else:
            out = [d.dispute_id for d in expired]
        print(json.dumps(out, sort_keys=True, default=str))
        return 0


def main(argv: list[str] | None = None) -> int:
    private_files()
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except (DisputeRejected, NotFound, DisputeConflict, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
