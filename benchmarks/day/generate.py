"""``python -m benchmarks.day.generate``: write a settled day into a store and the issuers' books.

The day is ``benchmarks.day.population`` (seeded: the same arguments write the same day) with
the discrepancies of ``benchmarks.day.inject``; it goes into the store through the store's bulk
load (``switch.store.imports``, a page per call) and into each issuer's books file
``<books>/<issuer>.db`` (``issuer.books_import``, a page per transaction), page by page, so
memory is bounded by the page and not the day. A run killed mid-way is simply run again: the
store's import keeps what is there, the books skip the pages they committed.

Besides: the expected discrepancies (``--expected``, JSON) and, for the ``duplicate`` ones, the
acquirer's earlier settlement report in the settlement directory. Prints one JSON line:
``{"step": "generate", "rows": ..., "seconds": ..., "rows_per_s": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.day import inject
from benchmarks.day.population import DAY_S, Day, Page
from issuer.books_import import BooksImport
from payswitch.settlement.report import build_report, write_report
from payswitch.world.topology import Topology, TopologyError, load
from switch.store import open_store
from switch.store.base import Store

PAGE = 10_000


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks.day.generate", description=__doc__)
    p.add_argument(
        "--store", required=True, help="state store URL (sqlite:///... or cassandra://...)"
    )
    p.add_argument("--topology", required=True, type=Path, help="topology TOML")
    p.add_argument("--books", required=True, type=Path, help="issuer books directory")
    p.add_argument("--count", required=True, type=int, help="switch transactions to write")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--cutoff", type=float, help="Unix s of the cut-off (default: now)")
    p.add_argument("--page", type=int, default=PAGE, help="transactions per page")
    p.add_argument("--per-kind", type=int, default=3, help="injected discrepancies of each kind")
    p.add_argument("--expected", type=Path, help="where to write the expected discrepancies")
    p.add_argument("--settlement-dir", type=Path, help="default: the topology's")
    args = p.parse_args(argv)
    for name in ("count", "page"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if args.per_kind < 0:
        p.error("--per-kind must be >= 0")
    if args.count < 20 * len(inject.KINDS) * args.per_kind:
        p.error("--count is too small for --per-kind (at least 20 transactions per injection)")
    try:
        open_store(args.store)  # parsed only: nothing is opened or written
    except ValueError as exc:
        p.error(f"--store: {exc}")
    return args


async def _write_page(store: Store, books: dict[str, BooksImport], page: Page) -> None:
    await store.import_transactions(page.txs)
    await store.import_batch_items(page.items)
    for terminal_id, tx_id, kind in page.unbatched:
        await store.mark_unbatched(terminal_id, tx_id, kind, time.time())
    for dispute in page.disputes:
        await store.dispute_create(dispute)

    def write_books() -> None:
        for issuer_id, rows in sorted(page.books.items()):
            books[issuer_id].write(rows)

    await asyncio.to_thread(write_books)


def _prior_reports(day: Day, directory: Path) -> None:
    """The acquirers' earlier reports that settled the ``duplicate`` sales already."""
    by_acquirer: dict[str, list[dict[str, object]]] = {}
    for acquirer, entry in day.prior:
        by_acquirer.setdefault(acquirer, []).append(entry)
    at = day.cutoff - 2 * DAY_S
    for acquirer, entries in sorted(by_acquirer.items()):
        file_id = f"{acquirer}-00000000-prior"
        write_report(directory, build_report(acquirer, file_id, at, entries))  # type: ignore[arg-type]


async def generate(args: argparse.Namespace, topology: Topology) -> dict[str, object]:
    cutoff = float(int(args.cutoff if args.cutoff is not None else time.time()))
    today = dt.datetime.fromtimestamp(cutoff - DAY_S / 2, dt.UTC).date().isoformat()
    plan = inject.plan(args.count, args.per_kind, args.seed) if args.per_kind else {}
    day = Day(
        topology,
        seed=args.seed,
        cutoff=cutoff,
        today=today,
        injections=plan,
        injector=inject.INJECTOR,
    )
    args.books.mkdir(parents=True, exist_ok=True)
    books = {
        i.id: await asyncio.to_thread(BooksImport, args.books / f"{i.id}.db", i.accounts)
        for i in topology.issuers
    }
    rows = 0
    try:
        async with open_store(args.store) as store:
            started = time.monotonic()  # the store is open (its schema applied)
            for page in day.pages(args.count, args.page):
                await _write_page(store, books, page)
                rows += len(page.txs)
    finally:
        for b in books.values():
            b.close()
    seconds = time.monotonic() - started
    directory = args.settlement_dir or topology.settlement.directory()
    _prior_reports(day, Path(directory))
    if args.expected is not None:
        inject.write_expected(args.expected, day.expected)
    missing = set(plan.values()) - {e.injected for e in day.expected}
    if missing:
        raise RuntimeError(f"injections not written (count too small?): {sorted(missing)}")
    return {
        "step": "generate",
        "rows": rows,
        "sales": day.sales,
        "injected": len(day.expected),
        "cutoff": cutoff,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 1) if seconds else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        topology = load(args.topology)
    except (OSError, TopologyError) as exc:
        print(f"--topology: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(asyncio.run(generate(args, topology))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
