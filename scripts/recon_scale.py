"""How long ``payswitch-recon run`` takes on a synthetic settled day (issue 17), and its peak
memory: N settled sales on a SQLite store, one acquirer report (``payswitch-settlement/2``,
as the settlement run writes it) and one issuer's books that
agree except for a known set of injected discrepancies, then the command as its own process.

    .venv/bin/python scripts/recon_scale.py 100000 [--keep DIR]

Not a test and not the benchmark (benchmarks/ has the whole day); a figure for the recon
step alone. Rows are written straight into the files (the store's own schema, opened once
through ``open_store``), so building the day costs little next to the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from issuer.books import Books
from payswitch.settlement.report import ReportWriter
from switch.domain.transactions import Transaction, TxState, TxType
from switch.store import open_store

DAY0 = 1_800_000_000.0
INJECTED = {"AMOUNT_MISMATCH": 3, "MISSING_AT_ACQUIRER": 3, "MISSING_AT_ISSUER": 2,
            "MISSING_IN_SWITCH": 2}  # fmt: skip


def _tx(n: int) -> Transaction:
    return Transaction(
        id=f"tx-{n:08d}", type=TxType.AUTHORIZATION, state=TxState.SETTLED,
        terminal_id=f"T{n % 500:04d}", merchant_id=f"M{n % 100:03d}", stan=n % 999_999 + 1,
        local_date="2027-01-15", local_time="2027-01-15T09:00:00", amount_minor=1_000 + n % 5_000,
        currency="EUR", card_token=f"tok{n}", masked_pan="411111******1111", bin="41111111",
        scheme="visa", rrn=f"{n:012d}", created_at=DAY0, updated_at=DAY0, deadline_at=DAY0 + n,
        acquirer_id="ACQ1", captured_minor=1_000 + n % 5_000, mcc="5411",
    )  # fmt: skip


async def build(folder: Path, n: int) -> tuple[str, Path]:
    url = f"sqlite:///{folder}/switch.db"
    async with open_store(url):
        pass  # the schema
    from switch.store.sqlite.store import _TX_INSERT, _to_db

    db = sqlite3.connect(folder / "switch.db")
    books = Books(folder / "ISS1.db")
    books.close()
    bk = sqlite3.connect(folder / "ISS1.db")
    entries = []
    rows, auths = [], []
    for i in range(n):
        tx = _tx(i)
        rows.append(tuple(_to_db(getattr(tx, f)) for f in Transaction.__dataclass_fields__))
        amount = tx.captured_minor
        if i < 3:
            amount += 1  # AMOUNT_MISMATCH (acquirer)
        if not 3 <= i < 6:  # MISSING_AT_ACQUIRER
            entries.append({
                "transaction_id": tx.id, "rrn": tx.rrn, "kind": "CAPTURE",
                "amount_minor": amount, "currency": "EUR", "interchange_minor": 0,
                "scheme_fee_minor": 0, "status": "SETTLED", "reason": "",
            })  # fmt: skip
        if not 6 <= i < 8:  # MISSING_AT_ISSUER
            auths.append((tx.rrn, "EUR", tx.amount_minor, "POSTED", tx.captured_minor))
        if len(rows) >= 10_000:
            db.executemany(_TX_INSERT, rows)
            rows = []
    db.executemany(_TX_INSERT, rows)
    for k in range(2):  # MISSING_IN_SWITCH: the issuer posted what the switch never had
        auths.append((f"9{k:011d}", "EUR", 500, "POSTED", 500))
    bk.executemany(
        "INSERT INTO authorizations (rrn, currency, amount, state, posted) VALUES (?, ?, ?, ?, ?)",
        auths,
    )
    db.commit()
    bk.commit()
    db.close()
    bk.close()
    writer = ReportWriter(folder, "ACQ1", "ACQ1-20270115-1", DAY0 + 3_600)  # format /2
    for entry in entries:
        writer.add(entry)
    writer.finish()
    return url, folder / "ISS1.db"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("n", type=int)
    p.add_argument("--keep", help="build in this (empty) folder and keep it")
    p.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="recon-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    if args.build_only:
        asyncio.run(build(folder, args.n))
        return 0
    # The day is built by a child, so this process stays small: a child forked from a big
    # parent would count the parent's pages in its own peak until it execs.
    t0 = time.monotonic()
    build_cmd = [sys.executable, __file__, str(args.n), "--keep", str(folder), "--build-only"]
    subprocess.run(build_cmd, check=True)  # noqa: S603
    built = time.monotonic() - t0
    url, books = f"sqlite:///{folder}/switch.db", folder / "ISS1.db"
    cmd = [sys.executable, "-m", "switch.cli.recon", "--store", url, "run", "--dir",
           str(folder), "--books", str(books), "--cutoff", str(DAY0 + 60), "--summary"]  # fmt: skip
    t1 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)  # noqa: S603
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t1
    proc.returncode = os.waitstatus_to_exitcode(status)
    done = argparse.Namespace(
        stdout=proc.stdout.read() if proc.stdout else "", returncode=proc.returncode
    )
    peak_mb = usage.ru_maxrss / 1024
    summary = json.loads(done.stdout.strip().splitlines()[-1])["recon"]
    ok = summary["issues"] == INJECTED
    print(json.dumps({"n": args.n, "build_s": round(built, 1), "recon_wall_s": round(wall, 1),
                      "recon_peak_rss_mb": round(peak_mb), "exit": done.returncode,
                      "found_exactly_the_injected": ok, "summary": summary}))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
