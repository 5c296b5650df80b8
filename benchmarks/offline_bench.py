"""Offline payments, measured (issue 13): the approval at the terminal and the sync rate.

  .venv/bin/python -m benchmarks.offline_bench [--approvals 2000] [--spends 2000]
      [--concurrency 8] [--cassandra cassandra://127.0.0.1/offline_bench?replication=1]

- ``approve``: ``OfflineTerminal.approve`` whole, sequential, on a file journal: both ECDSA
  verifications (allowance, spend), the terminal's limits and the journal commit with its
  fsync (WAL, ``synchronous=FULL``) — what a cardholder waits for after tapping. The device's
  signature is made beforehand (it is the device's time, not the terminal's).
- ``sync``: ``OfflineSettlement.settle`` per uploaded spend (verify both signatures, claim the
  counter first-writer-wins, audit the allowance, pay through a no-op payer) with
  ``--concurrency`` terminals uploading at once, on SQLite (``synchronous=full``) and, when
  ``--cassandra`` is given, on Cassandra (LWT claims): spends settled per second.

Bounded in count; results to ``benchmarks/results/offline_bench-<time>.json``, a summary printed.
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
from pathlib import Path
from typing import Any

from payswitch.offline import ecdsa
from payswitch.offline.checks import Trust
from payswitch.offline.formats import Allowance, Signed, Spend, sign_allowance
from switch.backoffice.offline.settle import OfflineSettlement, Payment, Upload
from switch.backoffice.offline.trust import TrustBook
from switch.store import open_store
from terminals.offline import Limits, OfflineTerminal

RESULTS = Path(__file__).resolve().parent / "results"
NOW = int(time.time())


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _spends(
    issuer: ecdsa.SoftwareKey, count: int, per_card: int, terminal: str, tag: str
) -> list[tuple[Signed, Signed]]:
    """``count`` valid (allowance, spend) pairs, ``per_card`` per device, chained."""
    out: list[tuple[Signed, Signed]] = []
    for card in range((count + per_card - 1) // per_card):
        dev = ecdsa.SoftwareKey()
        a = Allowance(
            "bank-a", 1, f"al-{tag}-{card}", f"tok-{card}", dev.public_key(), 5_000,
            5_000 * per_card, per_card, "EUR", NOW - 60, NOW + 86_400,
        )  # fmt: skip
        signed = sign_allowance(a, issuer.sign_digest)
        prev = a.genesis()
        for n in range(1, per_card + 1):
            if len(out) == count:
                break
            s = Spend(a.allowance_id, n, 100 + n, "EUR", "M1", terminal, NOW, prev)
            prev = s.digest()
            out.append((signed, Signed(s.canonical(), dev.sign_digest(s.digest()))))
    return out


def bench_approve(count: int, work: Path) -> dict[str, Any]:
    issuer = ecdsa.SoftwareKey()
    t = OfflineTerminal(work / "journal.db", "T1", "M1")
    t.install(
        Trust(keys={("bank-a", 1): issuer.public_key()}, version=1),
        Limits(floor_limit=10_000, per_card_count=10_000, per_card_total=10**9),
    )
    pairs = _spends(issuer, count, 5, "T1", "ap")
    times = []
    for a, s in pairs:
        t0 = time.perf_counter()
        t.approve(a, s, NOW)
        times.append((time.perf_counter() - t0) * 1000)
    t.close()
    return {
        "approvals": len(times),
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(_pct(times, 0.99), 2),
        "max_ms": round(max(times), 2),
    }


async def bench_sync(url: str, count: int, concurrency: int) -> dict[str, Any]:
    issuer = ecdsa.SoftwareKey()
    book = TrustBook()
    book.publish_keys("bank-a", {1: issuer.public_key()})
    tag = os.urandom(3).hex()
    streams = [
        _spends(issuer, count // concurrency, 5, f"T{i}", f"{tag}-{i}") for i in range(concurrency)
    ]

    async def pay(_p: Payment) -> None:
        return None

    async with open_store(url) as store:
        settlement = OfflineSettlement(store, book, pay)

        async def upload(i: int) -> int:
            bad = 0
            for seq, (a, s) in enumerate(streams[i], 1):
                done = await settlement.settle(Upload(f"T{i}", "M1", seq, a, s, book.version))
                bad += int(not done.accepted or bool(done.problems))
            return bad

        t0 = time.perf_counter()
        bad = sum(await asyncio.gather(*(upload(i) for i in range(concurrency))))
        seconds = time.perf_counter() - t0
    total = sum(len(s) for s in streams)
    return {
        "spends": total,
        "concurrency": concurrency,
        "seconds": round(seconds, 2),
        "spends_per_s": round(total / seconds, 1),
        "not_accepted": bad,
    }


def drop_keyspace(url: str) -> None:
    """The benchmark's keyspace goes when it is done (the dev node is shared)."""
    from cassandra.cluster import Cluster

    from switch.store.cassandra.config import parse_url

    cfg = parse_url(url)
    cluster = Cluster(list(cfg.hosts), port=cfg.port)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {cfg.keyspace}", timeout=60)
    finally:
        cluster.shutdown()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="offline approval latency and sync rate")
    p.add_argument("--approvals", type=int, default=2000)
    p.add_argument("--spends", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--cassandra", default="", help="a cassandra:// URL to measure sync on too")
    args = p.parse_args(argv)
    result: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.node()} {os.cpu_count()} cores {platform.machine()}",
    }
    with tempfile.TemporaryDirectory(prefix="offline-bench-") as tmp:
        work = Path(tmp)
        result["approve"] = bench_approve(args.approvals, work)
        result["sync_sqlite"] = asyncio.run(
            bench_sync(f"sqlite:///{work}/store.db", args.spends, args.concurrency)
        )
        if args.cassandra:
            try:
                result["sync_cassandra"] = asyncio.run(
                    bench_sync(args.cassandra, args.spends, args.concurrency)
                )
            finally:
                drop_keyspace(args.cassandra)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"offline_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    a = result["approve"]
    print(f"offline approve: p50 {a['p50_ms']} ms, p99 {a['p99_ms']} ms, max {a['max_ms']} ms")
    for name in ("sync_sqlite", "sync_cassandra"):
        if name in result:
            r = result[name]
            print(f"{name}: {r['spends_per_s']} spends/s ({r['spends']} in {r['seconds']} s)")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
