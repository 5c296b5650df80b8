"""HSM operations per second on SoftHSM through python-pkcs11, next to the bare call rate.

  .venv/bin/python -m benchmarks.hsm_bench [--seconds 2] [--processes 1,2] [--concurrency 64]

Runs on a throwaway token in a temporary directory (never the development token). Measures:

- ``bare``: ``C_GenerateRandom(8 bytes)`` in a loop on the HSM thread: the python-pkcs11 +
  SoftHSM floor per call;
- ``derive_decrypt``: ``hsm.dukpt.decrypt_card_data`` (chain via the chain cache, data key,
  AES-CBC decrypt, destroy) for FRESH KSNs: ``--terminals`` terminals interleaved, each counting
  up from a random point below 2^20, every KSN used once (as a switch sees traffic);
- ``mac_decrypt``: ``hsm.mac.open_request`` (one chain, CMAC verify, decrypt), what the switch runs;
- ``response_mac``: ``hsm.mac.response_mac`` (one chain, CMAC sign), the MAC on every answer;
- ``tokenize``: ``hsm.tokens.tokenize`` (HMAC-SHA256 and shaping);

each "in-thread" (a loop inside one job: HSM cost only) and "via pool" (one ``await pool.run``
per operation from ``--concurrency`` coroutines: adds the executor hop), and the in-thread loops
again in N spawned processes at once (aggregate ops/s: how the HSM tier scales). Results go to
``benchmarks/results/hsm_bench-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PAN = "4111111111111111"


def _loop(fn, seconds: float) -> tuple[int, float]:
    n, t0 = 0, time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(50):
            if fn() is False:
                return n, time.perf_counter() - t0
            n += 1
        now = time.perf_counter()
        if now >= deadline:
            return n, now - t0


def _traffic(pool: Any, terminals: int, per_terminal: int) -> list[tuple]:
    """Fresh KSNs as a switch sees them: many terminals, interleaved, each counting up from a
    random point of its life (counter < 2^20), every KSN used once."""
    import random

    from hsm import kif
    from payswitch.seclink import canonical_request
    from terminals.secure_element import SecureElement

    rng = random.Random(os.getpid())
    ses = []
    for _ in range(terminals):
        se = SecureElement()
        m, e = se.transport_public_key()
        ikid = bytes.fromhex("00000001") + os.urandom(4)
        se.load_initial_key(
            ikid, pool.run_sync(kif.wrap_initial_key_for_terminal, ikid, m, e).wrapped
        )
        se.counter = rng.randrange(0, 2**20)
        ses.append(se)
    out = []
    for _ in range(per_terminal):
        for se in ses:
            tx = se.begin()
            ct = tx.encrypt_card_data(f"{PAN}=2812".encode())
            fields = dict(
                terminal_id="T-0001",
                merchant_id="M-GROCER",
                stan=1,
                local_time="2026-11-21T14:03:05",
                amount_minor=1250,
                currency="EUR",
                entry_mode="chip",
                ksn=bytes(tx.ksn),
                card_ciphertext=ct,
            )
            out.append(
                (
                    tx.ksn,
                    ct,
                    fields,
                    canonical_request(**fields),
                    tx.mac(canonical_request(**fields)),
                )
            )
    return out


def _workload(seconds: float, terminals: int, per_terminal: int) -> dict[str, Any]:
    """Build traffic in this process and run every in-thread loop (one job each)."""
    from hsm import dukpt, mac, tokens
    from hsm.pool import HsmPool

    pool = HsmPool()
    traffic = _traffic(pool, terminals, per_terminal * 4)
    q = len(traffic) // 4
    t_dd, t_md, t_rm, t_pool = (
        traffic[:q],
        traffic[q : 2 * q],
        traffic[2 * q : 3 * q],
        traffic[3 * q :],
    )
    popcount = sum(t[0].counter.bit_count() for t in traffic) / len(traffic)

    def in_thread(session) -> dict[str, Any]:
        out: dict[str, Any] = {}
        it_dd, it_md, it_rm = iter(t_dd), iter(t_md), iter(t_rm)

        def dd():
            t = next(it_dd, None)
            if t is None:
                return False
            dukpt.decrypt_card_data(session, t[0], t[1])
            return True

        def md():
            t = next(it_md, None)
            if t is None:
                return False
            mac.open_request(session, t[3], t[0], t[1], t[4])
            return True

        def rm():
            t = next(it_rm, None)
            if t is None:
                return False
            mac.response_mac(session, t[0], t[3])
            return True

        for name, fn in (
            ("bare", lambda: session.generate_random(64)),
            ("derive_decrypt", dd),
            ("mac_decrypt", md),
            ("response_mac", rm),
            ("tokenize", lambda: tokens.tokenize(session, PAN)),
        ):
            n, dt = _loop(fn, seconds)
            out[name] = round(n / dt)
        return out

    return {"in_thread": pool.run_sync(in_thread), "mean_counter_popcount": popcount, "txs": t_pool}


async def _via_pool(seconds: float, concurrency: int, txs: list) -> dict[str, int]:
    from hsm import dukpt, tokens
    from hsm.pool import HsmPool

    pool = HsmPool(max_pending=concurrency + 8)
    out: dict[str, int] = {}

    async def bench(name: str, make_call, limit: int | None = None) -> None:
        count = 0
        deadline = time.perf_counter() + seconds
        feed = iter(range(limit if limit is not None else 10**12))

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                i = next(feed, None)
                if i is None:
                    return
                await make_call(i)
                count += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        out[name] = round(count / (time.perf_counter() - t0))

    await bench("bare", lambda i: pool.run(lambda s: s.generate_random(64)))
    await bench(
        "derive_decrypt",
        lambda i: pool.run(dukpt.decrypt_card_data, txs[i][0], txs[i][1]),
        limit=len(txs),
    )
    await bench("tokenize", lambda i: pool.run(tokens.tokenize, PAN))
    return out


def _child(seconds: float, terminals: int, per_terminal: int, queue: Any) -> None:
    res = _workload(seconds, terminals, per_terminal)
    res.pop("txs")
    queue.put(res["in_thread"])


def _processes(n: int, seconds: float, terminals: int, per_terminal: int) -> dict[str, int]:
    ctx = mp.get_context("spawn")  # never fork after C_Initialize
    queue = ctx.Queue()
    args = (seconds, terminals, per_terminal, queue)
    procs = [ctx.Process(target=_child, args=args) for _ in range(n)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    return {k: sum(r[k] for r in results) for k in results[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="HSM ops/s on SoftHSM")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--processes", default="1,2", help="comma-separated process counts")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--terminals", type=int, default=32)
    ap.add_argument("--per-terminal", type=int, default=250, help="fresh KSNs per terminal")
    args = ap.parse_args(argv)

    from hsm.exchange import ceremony
    from hsm.testing import process_test_config

    home = Path(tempfile.mkdtemp(prefix="payswitch-hsm-bench-"))
    cfg = process_test_config(home)  # exports SOFTHSM2_CONF etc. before pkcs11 loads

    from hsm import keys
    from hsm.config import REPO_ROOT
    from hsm.pool import HsmPool
    from payswitch.world.topology import load

    one = HsmPool(cfg)  # one token stands in for every party: an HSM micro-benchmark
    ceremony(lambda _party: one, keys.plan(load(REPO_ROOT / "topology" / "default.toml")))

    single = _workload(args.seconds, args.terminals, args.per_terminal)
    txs = single.pop("txs")
    via = asyncio.run(_via_pool(args.seconds, args.concurrency, txs))
    scaling = {
        str(n): _processes(n, args.seconds, args.terminals, args.per_terminal)
        for n in (int(x) for x in args.processes.split(",") if x)
    }
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "seconds_per_measure": args.seconds,
        "mean_counter_popcount": round(single["mean_counter_popcount"], 2),
        "in_thread_ops_per_s": single["in_thread"],
        "via_pool_ops_per_s": via,
        "pool_concurrency": args.concurrency,
        "terminals": args.terminals,
        "fresh_ksns_per_measure": args.terminals * args.per_terminal,
        "processes_aggregate_in_thread_ops_per_s": scaling,
    }
    print(f"HSM ops/s (SoftHSM, python-pkcs11, {os.cpu_count()} CPUs)")
    print(f"{'operation':<16}{'in-thread':>11}{'via pool':>10}", end="")
    for n in scaling:
        print(f"{n + ' proc':>10}", end="")
    print()
    for op in single["in_thread"]:
        print(f"{op:<16}{single['in_thread'][op]:>11}{via.get(op, '-'):>10}", end="")
        for n in scaling:
            print(f"{scaling[n][op]:>10}", end="")
        print()
    print(
        f"(mean KSN counter popcount {result['mean_counter_popcount']}; "
        f"1-min load average {os.getloadavg()[0]:.1f}: other work on the machine skews these)"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"hsm_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
