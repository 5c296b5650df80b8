"""Offline cases for operators and merchants (``python -m switch.cli.offline_cases``).

    ... --store URL list                     # every case: id, problems, liability, paid
    ... --store URL show CASE_ID             # the case, the sale it concerns, its disputes
    ... --store URL represent CASE_ID        # answer its chargebacks with the case's evidence

A cardholder disputes a paid case through the issuer (a chargeback on the sale's RRN, which
``show`` gives), ingested by ``payswitch-dispute ingest``; the merchant answers here. Output is
JSON; exit status 2 for an unknown case or a refused step, with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys

from payswitch.process import private_files
from switch.backoffice.disputes.service import DisputeRejected
from switch.backoffice.offline.disputes import case_view, represent_with_case
from switch.domain.errors import NotFound
from switch.domain.ledger import DisputeConflict
from switch.store import open_store


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="offline-cases", description="offline cases and disputes")
    p.add_argument("--store", required=True, help="state store URL (as the switch's)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    sub.add_parser("show").add_argument("case_id")
    sub.add_parser("represent").add_argument("case_id")
    return p


async def run(args: argparse.Namespace) -> object:
    async with open_store(args.store) as store:
        if args.command == "list":
            return [
                {"case_id": c.case_id, "problems": list(c.problems), "liability": c.liability,
                 "paid": c.paid, "amount": c.amount, "currency": c.currency,
                 "terminal_id": c.terminal_id}
                for c in await store.offline_cases()
            ]  # fmt: skip
        if args.command == "show":
            view = await case_view(store, args.case_id)
            sale = view.sale
            return {
                "case": dataclasses.asdict(view.case),
                "sale": None
                if sale is None
                else {"transaction_id": sale.id, "rrn": sale.rrn, "state": sale.state.value,
                      "amount": sale.captured_minor, "currency": sale.currency},
                "disputes": [dataclasses.asdict(d) for d in view.disputes],
            }  # fmt: skip
        return [dataclasses.asdict(d) for d in await represent_with_case(store, args.case_id)]


def main(argv: list[str] | None = None) -> int:
    private_files()
    args = _parser().parse_args(argv)
    try:
        out = asyncio.run(run(args))
    except (DisputeRejected, NotFound, DisputeConflict) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
