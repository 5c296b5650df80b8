"""The back office's page calls on one store, alone: where a day's cut-off time goes per call.

    python -m benchmarks.day.store_calls --store cassandra --rows 5000

Imports ``rows`` CAPTURED sales (``Store.import_transactions``), then times, page by page
(500 as the settlement run does): ``get_transactions`` (the clear step's reads),
``ledger_post_many`` (two postings of two lines per sale, as clear and apply post), and
``settle_presented`` (the apply step's CAS). One line of rows/s per call. A fresh keyspace (or
SQLite file), dropped at the end. The machine is shared: compare calls within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from benchmarks.day.run import drop_keyspace, store_url
from switch.domain.ledger import LedgerLine, LedgerPosting
from switch.domain.transactions import Transaction, TxState, TxType
from switch.store import open_store

PAGE = 500


def _sale(n: int, now: float) -> Transaction:
    return Transaction(
        id=f"bench-{n:08d}",
        type=TxType.AUTHORIZATION,
        state=TxState.CAPTURED,
        terminal_id=f"T{n % 200:04d}",
        merchant_id=f"M{n % 50:03d}",
        stan=n % 999_999 + 1,
        local_date="2027-01-15",
        local_time="2027-01-15T10:30:00",
        amount_minor=1000 + n % 500,
        currency="EUR",
        card_token=f"tok_{n:08x}",
        masked_pan="411111******1111",
        bin="411111",
        scheme="visanet",
        rrn=f"{n:012d}",
        deadline_at=now + 30,
        acquirer_id="ACQ1",
        captured_minor=1000 + n % 500,
        created_at=now,
        updated_at=now,
    )


def _posting(tx: Transaction, kind: str, now: float) -> LedgerPosting:
    amount = tx.amount_minor
    return LedgerPosting(
        f"{tx.id}/{kind}/0",
        tx.id,
        kind,
        f"{int(tx.id[-8:]):012d}",
        tx.currency,
        now,
        (LedgerLine("a:ACQ1", "EUR", amount), LedgerLine(f"m:{tx.merchant_id}", "EUR", -amount)),
    )


async def _timed(name: str, rows: int, pages: list[list[object]], call: object) -> None:
    started = time.perf_counter()
    for page in pages:
        await call(page)  # type: ignore[operator]
    took = time.perf_counter() - started
    print(f"  {name:<22} {rows:>8,} rows {took:7.1f} s {rows / took:9,.0f} rows/s", flush=True)


async def bench(backend: str, rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url, keyspace = store_url(backend, Path(tmp))
        store = open_store(url)
        try:
            await store.open()
            now = time.time()
            txs = [_sale(n, now) for n in range(rows)]
            for i in range(0, rows, PAGE):
                await store.import_transactions(txs[i : i + PAGE])
            ids = [[t.id for t in txs[i : i + PAGE]] for i in range(0, rows, PAGE)]
            print(f"{backend} {rows:,} sales, pages of {PAGE}", flush=True)
            await _timed("get_transactions", rows, ids, store.get_transactions)
            for kind in ("CAPTURE_PRESENTED", "CAPTURE_SETTLED"):
                postings = [_posting(t, kind, now) for t in txs]
                pages = [postings[i : i + PAGE] for i in range(0, rows, PAGE)]
                await _timed(f"ledger_post_many {kind[8:]}", rows, pages, store.ledger_post_many)

            async def settle(page: list[str]) -> None:
                await store.settle_presented(page, [], time.time())

            await _timed("settle_presented", rows, ids, settle)
        finally:
            await store.close()
            if keyspace is not None:
                drop_keyspace(keyspace)


def main() -> None:
    p = argparse.ArgumentParser(prog="benchmarks.day.store_calls", description=__doc__)
    p.add_argument("--store", default="cassandra", choices=("sqlite", "cassandra"))
    p.add_argument("--rows", type=int, default=5000)
    args = p.parse_args()
    if args.rows < 1:
        p.error("--rows: at least 1")
    asyncio.run(bench(args.store, args.rows))


if __name__ == "__main__":
    main()
