"""Per-write cost of the SQLite store under synchronous=FULL and NORMAL (WAL), on this machine.

Why: FULL fsyncs the WAL on every commit (survives power loss), NORMAL does not (survives a
process crash only). This measures what that fsync costs per write and per authorization,
sequentially and with concurrent authorizations, so the default in switch/store/sqlite.py rests
on numbers. An authorization is measured twice: as the switch writes it (three commits: claim;
vault + insert + attach + RECEIVED->PENDING; PENDING->APPROVED + complete) and, for
comparison, as it did before the composite writes (the same seven writes one commit each).

    .venv/bin/python -m benchmarks.store_bench [--writes 2000] [--auths 500] [--dir DIR]

Prints a table and saves JSON to benchmarks/results/store_bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from switch.domain.idempotency import Answer
from switch.domain.transactions import Changes, Expect, Transaction, TxState, TxType
from switch.domain.vault import VaultWrite
from switch.store.sqlite.store import SqliteStore

RESULTS = Path(__file__).resolve().parent / "results"


def _summary(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 4),
        "mean_ms": round(statistics.fmean(ms), 4),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 4),
        "max_ms": round(ms[-1], 4),
    }


async def _timed(n: int, op: Callable[[int], Awaitable[object]]) -> list[float]:
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        await op(i)
        samples.append(time.perf_counter() - t0)
    return samples


def _tx(i: int, prefix: str) -> Transaction:
    now = time.time()
    return Transaction(
        id=f"{prefix}-{i}",
        type=TxType.AUTHORIZATION,
        state=TxState.RECEIVED,
        terminal_id=f"T{i % 97:04d}",
        merchant_id="M001",
        stan=i // 97 + 1,
        local_date=prefix,
        local_time="2027-01-15T10:30:00",
        amount_minor=1000 + i,
        currency="EUR",
        card_token=f"tok_{i:08x}",
        masked_pan="411111******1111",
        bin="41111111",
        scheme="VISA",
        rrn=f"{i:012d}",
        created_at=now,
        updated_at=now,
        deadline_at=now + 2,
    )


async def _authorize(store: SqliteStore, i: int, prefix: str) -> None:
    """The store calls of one authorization, as the switch makes them: three commits."""
    tx = _tx(i, prefix)
    now = time.time()
    await store.claim_idempotency(tx.terminal_id, tx.id, "authorize", "fp", 86400, now)
    await store.receive_with_intent(
        tx,
        vault=VaultWrite(tx.card_token, b"v" * 60, 1),
        attach=(tx.terminal_id, tx.id),
        acquirer_id="A1",
        now=now,
    )
    await store.record_with_answer(
        tx.id,
        TxState.PENDING,
        TxState.APPROVED,
        Changes(response_code="00"),
        Answer(tx.terminal_id, tx.id, b"x" * 120),
    )


async def _authorize_separately(store: SqliteStore, i: int, prefix: str) -> None:
    """The same writes one commit each (seven), as before the composite writes."""
    tx = _tx(i, prefix)
    now = time.time()
    await store.claim_idempotency(tx.terminal_id, tx.id, "authorize", "fp", 86400, now)
    await store.put_vault_entry(tx.card_token, b"v" * 60, 1, now)
    await store.insert_transaction(tx)
    await store.attach_transaction(tx.terminal_id, tx.id, tx.id)
    await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING, Changes(acquirer_id="A1"))
    await store.transition(tx.id, TxState.PENDING, TxState.APPROVED, Changes(response_code="00"))
    await store.complete_idempotency(tx.terminal_id, tx.id, b"x" * 120, tx.id)


async def _concurrent(auths: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Authorizations per second with ``concurrency`` in flight (in waves)."""
    t0 = time.perf_counter()
    for start in range(0, auths, concurrency):
        await asyncio.gather(*(one(i) for i in range(start, min(start + concurrency, auths))))
    return round(auths / (time.perf_counter() - t0), 1)


CONCURRENT_RATE = "authorizations/s with 32 concurrent"  # the switch's writes (3 commits)


async def _bench_mode(
    mode: str, folder: Path, writes: int, auths: int, compare: bool = True
) -> dict[str, object]:
    """The figures of one synchronous mode; ``compare`` adds the seven-write authorization
    (the payswitch-bench dependency measure leaves it out to stay short)."""
    concurrency = 32
    out: dict[str, object] = {}
    async with SqliteStore(folder / f"{mode}.db", synchronous=mode) as store:
        seq = await _timed(writes, lambda _i: store.next_sequence("bench"))
        out["next_sequence (1 autocommit write)"] = _summary(seq)
        await store.insert_transaction(_tx(0, "cas"))
        cas = await _timed(
            writes,
            lambda i: store.compare_and_set(
                "cas-0", Expect(version=i + 1), Changes(refunded_minor=i)
            ),
        )
        out["compare_and_set (BEGIN IMMEDIATE, UPDATE, SELECT, COMMIT)"] = _summary(cas)
        auth = await _timed(auths, lambda i: _authorize(store, i, "seq"))
        out["authorization (3 commits, sequential)"] = _summary(auth)
        out[CONCURRENT_RATE] = await _concurrent(
            auths, concurrency, lambda i: _authorize(store, i, "conc")
        )
        if compare:
            old = await _timed(auths, lambda i: _authorize_separately(store, i, "seq7"))
            out["authorization (7 separate writes, sequential)"] = _summary(old)
            out[f"{CONCURRENT_RATE} (7 separate writes)"] = await _concurrent(
                auths, concurrency, lambda i: _authorize_separately(store, i, "conc7")
            )
    return out


def _fsync_cost(folder: Path, n: int) -> dict[str, float]:
    """The bare fsync this disk charges, for reference."""
    path = folder / "fsync.bin"
    samples = []
    with open(path, "ab") as f:
        for _ in range(n):
            f.write(b"x" * 4096)
            f.flush()
            t0 = time.perf_counter()
            os.fsync(f.fileno())
            samples.append(time.perf_counter() - t0)
    return _summary(samples)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--auths", type=int, default=500)
    parser.add_argument("--dir", type=Path, default=RESULTS, help="where the scratch DBs go")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="store-bench-") as tmp:
        folder = Path(tmp)
        report: dict[str, object] = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "machine": f"{platform.system()} {platform.release()} {platform.machine()}",
            "cpus": os.cpu_count(),
            "scratch_dir": str(args.dir.resolve()),
            "fsync (4 KiB append)": _fsync_cost(folder, 200),
        }
        for mode in ("full", "normal"):
            report[f"synchronous={mode}"] = await _bench_mode(mode, folder, args.writes, args.auths)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "store_bench.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    asyncio.run(main())
