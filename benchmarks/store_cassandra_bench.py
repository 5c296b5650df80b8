"""Store cost of one authorization on SQLite and on Cassandra side by side, and the raw LWT rate.

Why: the Cassandra store spends about eight lightweight transactions (Paxos) per authorization
where SQLite spends six serialised commits; this shows what that costs in latency and
throughput on this machine, next to what the node does with bare LWTs and plain writes.

One "authorization" is the store calls of the switch pipeline, in its order: claim the
idempotency key, put the card's vault entry (one of 100 cards: later puts are free), insert the
transaction (+ duplicate-transmission claim), attach it to the key, RECEIVED -> PENDING,
PENDING -> APPROVED, complete the key with a 120-byte answer. Run sequentially (latency) and
closed-loop with C in flight (throughput).

    .venv/bin/python -m benchmarks.store_cassandra_bench [--auths 300] [--concurrency 1,8,32]
        [--lwts 500] [--cassandra cassandra://127.0.0.1/KS?replication=1] [--sqlite-sync full]

Needs a Cassandra node (``make cassandra-up``); the keyspace is created for the run and
dropped after. Prints a table; saves JSON to benchmarks/results/store_cassandra_bench-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from switch.domain.errors import StoreError
from switch.domain.transactions import Changes, Transaction, TxState, TxType
from switch.store import open_store
from switch.store.base import Store
from switch.store.cassandra.exec import LWT, execute
from switch.store.cassandra.store import CassandraStore

RESULTS = Path(__file__).resolve().parent / "results"
CARDS = 100


def _pcts(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    if not ms:
        return {}

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, int(len(ms) * p))], 3)

    return {
        "n": len(ms),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(ms[-1], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def _tx(run: str, i: int) -> Transaction:
    now = time.time()
    return Transaction(
        id=f"{run}-{i}",
        type=TxType.AUTHORIZATION,
        state=TxState.RECEIVED,
        terminal_id=f"{run}-T{i % 97:02d}",
        merchant_id="M001",
        stan=i // 97 + 1,
        local_date="2027-01-15",
        local_time="2027-01-15T10:30:00",
        amount_minor=1000 + i,
        currency="EUR",
        card_token=f"{i % CARDS:064x}",
        masked_pan="411111******1111",
        bin="41111111",
        scheme="VISA",
        rrn=f"{i:012d}",
        created_at=now,
        updated_at=now,
        deadline_at=now + 2,
    )


async def authorize(store: Store, run: str, i: int, ops: dict[str, list[float]]) -> None:
    """The store calls of one approved authorization, each timed into ``ops``."""
    tx = _tx(run, i)
    key = f"{run}-k{i}"

    async def timed(name: str, call: Awaitable[Any]) -> None:
        t0 = time.perf_counter()
        await call
        ops[name].append(time.perf_counter() - t0)

    now = time.time()
    await timed(
        "claim", store.claim_idempotency(tx.terminal_id, key, "authorize", "fp", 86400, now)
    )
    await timed("vault", store.put_vault_entry(tx.card_token, b"v" * 60, 1, now))
    await timed("insert", store.insert_transaction(tx))
    await timed("attach", store.attach_transaction(tx.terminal_id, key, tx.id))
    pending = Changes(acquirer_id="A1", updated_at=time.time())
    await timed("pending", store.transition(tx.id, TxState.RECEIVED, TxState.PENDING, pending))
    approved = Changes(response_code="00", auth_code="A1B2C3", updated_at=time.time())
    await timed("approved", store.transition(tx.id, TxState.PENDING, TxState.APPROVED, approved))
    await timed("complete", store.complete_idempotency(tx.terminal_id, key, b"x" * 120, tx.id))


async def _closed_loop(
    n: int, concurrency: int, op: Callable[[int], Awaitable[object]]
) -> tuple[float, list[float]]:
    """n operations with ``concurrency`` in flight; (wall seconds, per-op latencies)."""
    latencies: list[float] = []
    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:
            t0 = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, latencies


async def bench_store(url: str, auths: int, levels: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with open_store(url) as store:
        for c in levels:
            run = f"c{c}-{uuid.uuid4().hex[:6]}"
            ops: dict[str, list[float]] = defaultdict(list)
            await authorize(store, run + "w", 0, defaultdict(list))  # warm-up
            wall, lat = await _closed_loop(
                auths, c, lambda i, run=run, ops=ops: authorize(store, run, i, ops)
            )
            out[f"concurrency {c}"] = {
                "authorizations_per_s": round(auths / wall, 1),
                "authorization": _pcts(lat),
                "per_call_p50_ms": {k: _pcts(v)["p50_ms"] for k, v in ops.items()},
            }
    return out


async def bench_lwt(store: CassandraStore, n: int, levels: list[int]) -> dict[str, Any]:
    """Bare LWTs (INSERT IF NOT EXISTS on fresh keys) and plain INSERTs on the store's session,
    through the same asyncio bridge."""
    cql = store._open()
    session = cql.session
    await asyncio.to_thread(
        session.execute,
        "CREATE TABLE IF NOT EXISTS bench_lwt (k uuid PRIMARY KEY, v text)",
        timeout=60,
    )
    lwt = await asyncio.to_thread(
        session.prepare, "INSERT INTO bench_lwt (k, v) VALUES (?, ?) IF NOT EXISTS"
    )
    plain = await asyncio.to_thread(session.prepare, "INSERT INTO bench_lwt (k, v) VALUES (?, ?)")
    out: dict[str, Any] = {}
    for name, stmt, profile in (("lwt", lwt, LWT), ("plain write", plain, LWT)):
        for c in levels:

            async def one(_i: int, stmt: Any = stmt, profile: str = profile) -> None:
                await execute(session, stmt, (uuid.uuid4(), "x"), profile)

            await one(0)
            wall, lat = await _closed_loop(n, c, one)
            out[f"{name}, concurrency {c}"] = {"per_s": round(n / wall, 1), **_pcts(lat)}
    return out


def _table(report: dict[str, Any]) -> str:
    head = f"{'auth/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
    lines = [
        "",
        "authorizations (7 store calls each, approved path):",
        f"  {'':16}{'SQLite':^27} | {'Cassandra':^27}",
        f"  {'':16}{head} | {head}",
    ]
    for level in report["sqlite"]:
        cells = []
        for backend in ("sqlite", "cassandra"):
            r = report[backend][level]
            a = r["authorization"]
            cells.append(f"{r['authorizations_per_s']:>9}{a['p50_ms']:>9}{a['p99_ms']:>9}")
        lines.append(f"  {level:16}{cells[0]} | {cells[1]}")
    for backend in ("sqlite", "cassandra"):
        first = next(iter(report[backend]))
        calls = ", ".join(f"{k} {v}" for k, v in report[backend][first]["per_call_p50_ms"].items())
        lines.append(f"  {backend} p50 per call, {first} (ms): {calls}")
    lines.append("raw Cassandra requests (fresh keys):")
    for name, r in report["raw"].items():
        lines.append(f"  {name:28}{r['per_s']:>9}/s   p50 {r['p50_ms']} ms   p99 {r['p99_ms']} ms")
    return "\n".join(lines)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--auths", type=int, default=300)
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--lwts", type=int, default=500)
    p.add_argument("--cassandra", default="", help="store URL (default: a fresh keyspace)")
    p.add_argument("--sqlite-sync", default="full", choices=["full", "normal"])
    a = p.parse_args()
    levels = [int(x) for x in a.concurrency.split(",")]
    keyspace = f"bench_{int(time.time())}"
    url = a.cassandra or f"cassandra://127.0.0.1/{keyspace}?replication=1"
    RESULTS.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "auths": a.auths,
        "cassandra_url": url,
        "sqlite_synchronous": a.sqlite_sync,
    }
    with tempfile.TemporaryDirectory(prefix="store-cass-bench-") as tmp:
        sqlite_url = f"sqlite:///{tmp}/bench.db?synchronous={a.sqlite_sync}"
        report["sqlite"] = await bench_store(sqlite_url, a.auths, levels)
    try:
        report["cassandra"] = await bench_store(url, a.auths, levels)
        async with open_store(url) as store:
            assert isinstance(store, CassandraStore)
            report["raw"] = await bench_lwt(store, a.lwts, [1, 32])
            if not a.cassandra:
                await asyncio.to_thread(
                    store._open().session.execute, f"DROP KEYSPACE {keyspace}", timeout=60
                )
    except StoreError as exc:
        msg = f"Cassandra store at {url}: {exc} (is a node up? make cassandra-up)"
        raise SystemExit(msg) from exc
    path = RESULTS / f"store_cassandra_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(_table(report))
    print(f"\nsaved {path}")


if __name__ == "__main__":
    asyncio.run(main())
