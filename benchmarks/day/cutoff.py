"""``python -m benchmarks.day.cutoff``: the cut-off as a process of its own, for the benchmark.

A stand-in for ``payswitch-backoffice cutoff`` until it lands: ``run_cutoff`` with the ledger's
hooks, as the switch's scheduler runs it (``switch.backoffice.settlement.scheduler``), on a
plaintext network. Prints one JSON line ``{"step": "cutoff", "rows": ..., "seconds": ...}``
(rows: transactions settled by the run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from payswitch.world.topology import load
from switch.backoffice.ledger.ledger import Ledger, scheme_rates
from switch.backoffice.settlement.run import run_cutoff
from switch.store import open_store


async def cutoff(store_url: str, topology_path: Path, now: float | None) -> dict[str, object]:
    topology = load(topology_path)
    started = time.monotonic()
    async with open_store(store_url) as store:
        ledger = Ledger(store, topology.fees, scheme_rates(topology))
        result = await run_cutoff(store, topology, now=now, hooks=(ledger,))
        flush = getattr(ledger, "flush", None)  # the paged ledger (issue 17), when merged
        if flush is not None:
            await flush()
    seconds = time.monotonic() - started
    rows = len(result.settled)
    return {
        "step": "cutoff",
        "rows": rows,
        "closed": len(result.closed),
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 1) if seconds else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.day.cutoff", description=__doc__)
    p.add_argument("--store", required=True)
    p.add_argument("--topology", required=True, type=Path)
    p.add_argument("--now", type=float)
    args = p.parse_args(argv)
    print(json.dumps(asyncio.run(cutoff(args.store, args.topology, args.now))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
