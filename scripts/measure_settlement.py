"""Quick measurement of the streaming settlement run on SQLite (issue 17; not a test, not the
benchmark: ``benchmarks/`` has that). Seeds N captured sales straight into a fresh SQLite store
and one issuer's books with plain SQL (the volume generator is the benchmark's), runs the
acquirer and issuer settlement services in this process on loopback, then ``run_cutoff`` with
the switch's ledger hooks, and prints each step's figures and the process's peak RSS (the
switch's run and, in this same process, the acquirers' and issuers' services).

    .venv/bin/python scripts/measure_settlement.py --rows 100000 [--no-ledger]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sqlite3
import tempfile
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import grpc

from acquirer.back_office import AcquirerSettlementServicer
from issuer.back_office import IssuerSettlementServicer
from issuer.bookkeeper import Bookkeeper
from payswitch.v1 import settlement_pb2_grpc
from payswitch.world.ports import with_free_ports
from payswitch.world.topology import parse
from switch.backoffice.settlement.context import StepStat
from switch.backoffice.settlement.run import run_cutoff
from switch.backoffice.settlement.scheduler import switch_hooks
from switch.domain.transactions import COLUMNS, Transaction, TxState, TxType
from switch.store import open_store

REPO = Path(__file__).resolve().parents[1]
NOW = time.time()


def _value(v: object) -> object:
    return v.value if isinstance(v, TxState | TxType) else v


def seed_store(db: Path, rows: int, terminals: list[str]) -> None:
    conn = sqlite3.connect(db)
    cols = ", ".join(COLUMNS)
    marks = ", ".join("?" * len(COLUMNS))
    conn.execute("BEGIN")
    tx_rows, items = [], []
    for n in range(rows):
        terminal = terminals[n % len(terminals)]
        tx = Transaction(
            id=f"tx-{n:08d}", type=TxType.AUTHORIZATION, state=TxState.CAPTURED,
            terminal_id=terminal, merchant_id="M-GROCER", stan=n // len(terminals) % 999_999 + 1,
            local_date="2027-01-15", local_time="2027-01-15T10:00:00", amount_minor=1000 + n % 500,
            currency="EUR", card_token=f"tok{n}", masked_pan="411111******1111", bin="41111111",
            scheme="visa", rrn=f"{n:012d}", created_at=NOW - 3600, updated_at=NOW - 3000,
            deadline_at=NOW - 3590, acquirer_id="acq-alpha", captured_minor=1000 + n % 500,
            response_code="00", auth_code="A1B2C3", mcc="5411",
        )  # fmt: skip
        tx_rows.append(tuple(_value(getattr(tx, c)) for c in COLUMNS))
        items.append((terminal, tx.id, 1, "SALE", tx.captured_minor, "EUR", "visa", NOW - 3000))
        if len(tx_rows) >= 50_000 or n == rows - 1:  # in chunks: bounded memory here too
            conn.executemany(f"INSERT INTO transactions ({cols}) VALUES ({marks})", tx_rows)  # noqa: S608
            conn.executemany(
                "INSERT INTO batch_items (terminal_id, transaction_id, batch_no, kind,"
                " amount_minor, currency, scheme, joined_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                items,
            )
            tx_rows, items = [], []
    conn.executemany(
        "INSERT OR IGNORE INTO batch_open (terminal_id, batch_no, opened_at) VALUES (?, 1, ?)",
        [(t, NOW - 86_400) for t in terminals],
    )
    conn.execute("COMMIT")
    conn.close()


def seed_books(db: Path, rows: int) -> None:
    conn = sqlite3.connect(db)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO authorizations (rrn, account_id, currency, amount, response_code, auth_code,"
        " state) VALUES (?, 'A-1001', 'EUR', ?, 0, 'A1B2C3', 'HELD')",
        [(f"{n:012d}", 1000 + n % 500) for n in range(rows)],
    )
    conn.execute("UPDATE accounts SET held = held + ?, open_holds = open_holds + ?", (0, 0))
    conn.execute("COMMIT")
    conn.close()


async def main(rows: int, ledger: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="settle-measure-"))
    doc = with_free_ports(tomllib.loads((REPO / "topology/default.toml").read_text()))
    doc["network"]["tls"] = False
    doc["switch"]["tls"] = False
    doc.setdefault("settlement", {})["dir"] = str(work / "settle")
    topology = parse(doc)
    servers, closers = [], []
    for acquirer in topology.acquirers:
        server = grpc.aio.server()
        servicer = AcquirerSettlementServicer(acquirer.id, topology)
        settlement_pb2_grpc.add_AcquirerSettlementServiceServicer_to_server(servicer, server)
        server.add_insecure_port(acquirer.listen)
        servers.append(server)
        closers.append(servicer.close)
    for issuer in topology.issuers:
        books = await Bookkeeper.open(work / f"{issuer.id}.db", issuer.accounts)
        server = grpc.aio.server()
        settlement_pb2_grpc.add_IssuerSettlementServiceServicer_to_server(
            IssuerSettlementServicer(issuer.id, books), server
        )
        server.add_insecure_port(issuer.listen)
        servers.append(server)
        closers.append(books.close)
    loop = asyncio.get_running_loop()
    seeder = ProcessPoolExecutor(1)  # seeding in a child: the peak RSS below is the run's
    await loop.run_in_executor(seeder, seed_books, work / "bank-a.db", rows)
    store = open_store(f"sqlite:///{work}/switch.db")
    await store.open()
    await store.close()  # schema created
    started = time.perf_counter()
    terminals = [t.id for t in topology.terminals]
    await loop.run_in_executor(seeder, seed_store, work / "switch.db", rows, terminals)
    seeder.shutdown()
    print(json.dumps({"seeded": rows, "seconds": round(time.perf_counter() - started, 1)}))
    for server in servers:
        await server.start()

    def emit(stat: StepStat) -> None:
        per_s = stat.rows / stat.seconds if stat.seconds else 0.0
        line = {"step": stat.name, "rows": stat.rows, "seconds": round(stat.seconds, 2)}
        print(json.dumps({**line, "rows_per_s": round(per_s)}), flush=True)

    store = open_store(f"sqlite:///{work}/switch.db")
    await store.open()
    try:
        hooks = switch_hooks(store, topology) if ledger else ()
        t0 = time.perf_counter()
        result = await run_cutoff(store, topology, now=NOW, hooks=hooks, on_step=emit)
        total = time.perf_counter() - t0
    finally:
        await store.close()
        for server in servers:
            await server.stop(None)
        for close in closers:
            await close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"total_s": round(total, 1), "settled": result.settled,
                      "peak_rss_mb": round(peak_mb), "dir": str(work)}))  # fmt: skip


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--no-ledger", action="store_true")
    args = p.parse_args()
    asyncio.run(main(args.rows, not args.no_ledger))
