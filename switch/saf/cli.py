"""``python -m switch.saf.cli``: list store-and-forward items and dead letters, replay one.

An operator's tool that works on the state store directly (the same URL the switch uses), so
it needs no running switch; a live switch's worker picks a replayed item up on its next poll.
One JSON object per line: no card data is in an item (transaction id, kind, counters, error).

    python -m switch.saf.cli --store sqlite:///.run/switch.db list --dead
    python -m switch.saf.cli --store sqlite:///.run/switch.db replay REVERSAL:<tx id>
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys

import structlog

from switch.saf.queue import SafQueue
from switch.store import open_store


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="payswitch-saf", description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True, help="the switch's store URL")
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="live items (default) or dead letters (--dead)")
    ls.add_argument("--dead", action="store_true")
    ls.add_argument("--limit", type=int, default=100)
    rp = sub.add_parser("replay", help="send a dead letter again (attempts reset, due now)")
    rp.add_argument("item_id")
    return p.parse_args(argv)


def _line(item) -> str:
    data = dataclasses.asdict(item)
    data["kind"] = str(item.kind)
    return json.dumps(data, sort_keys=True)


async def run(args: argparse.Namespace) -> int:
    async with open_store(args.store) as store:
        queue = SafQueue(store)
        if args.command == "list":
            for item in await queue.list_items(args.dead, args.limit):
                print(_line(item))
            return 0
        try:
            print(_line(await queue.replay(args.item_id)))
        except KeyError:
            print(f"no item {args.item_id}", file=sys.stderr)
            return 2
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 3
        return 0


def main(argv: list[str] | None = None) -> None:
    # stdout carries the items; the queue's own log lines go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    sys.exit(asyncio.run(run(parse_args(argv))))


if __name__ == "__main__":
    main()
