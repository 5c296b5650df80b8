"""Bare rates of the hot path's dependencies, by the other benchmarks' own functions:
python-pkcs11 through the HSM pool (``benchmarks.hsm_bench``) and SQLite store writes
(``benchmarks.store_bench``).

Run as a child process (``python -m benchmarks.deps --out FILE``), after the token and its keys
exist: the HSM thread and the scratch databases stay out of the load generator's process, and
the result comes back as one JSON file (not stdout, where a library might log).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import hsm_bench, store_bench


async def measure(seconds: float, concurrency: int, writes: int, auths: int) -> dict[str, Any]:
    # No DUKPT traffic is prepared here (the switch does not decrypt card data yet): an empty
    # list makes hsm_bench skip derive_decrypt, leaving the bare call and tokenize.
    via_pool = await hsm_bench._via_pool(seconds, concurrency, [])
    via_pool.pop("derive_decrypt", None)
    with tempfile.TemporaryDirectory(prefix="payswitch-bench-store-") as tmp:
        folder = Path(tmp)
        store = {
            mode: await store_bench._bench_mode(mode, folder, writes, auths, compare=False)
            for mode in ("full", "normal")
        }
        fsync = store_bench._fsync_cost(folder, 50)
    return {
        "hsm_via_pool_ops_per_s": via_pool,
        "hsm_pool_concurrency": concurrency,
        "hsm_seconds_per_measure": seconds,
        "store": store,
        "fsync_4k_ms": fsync,
    }


def run_child(seconds: float, concurrency: int, writes: int, auths: int, timeout: float) -> dict:
    """Run :func:`measure` in a child process (inherits the token's environment)."""
    with tempfile.TemporaryDirectory(prefix="payswitch-bench-deps-") as tmp:
        out = Path(tmp) / "deps.json"
        argv = [sys.executable, "-m", "benchmarks.deps", "--seconds", str(seconds)]
        argv += ["--concurrency", str(concurrency), "--writes", str(writes)]
        argv += ["--auths", str(auths), "--out", str(out)]
        try:
            done = subprocess.run(  # noqa: S603 - our interpreter and module, no shell
                argv, capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return {"ran": False, "reason": f"timed out after {timeout:.0f} s"}
        if done.returncode != 0 or not out.is_file():
            tail = done.stderr.decode(errors="replace")[-600:]
            return {"ran": False, "reason": f"exit {done.returncode}: {tail.strip()}"}
        return {"ran": True, **json.loads(out.read_text())}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="benchmarks.deps", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--writes", type=int, default=1000)
    p.add_argument("--auths", type=int, default=300)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    result = asyncio.run(measure(args.seconds, args.concurrency, args.writes, args.auths))
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
