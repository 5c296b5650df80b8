"""``python -m benchmarks.day.run`` (``make bench-day``): a processor's day, cut-off to recon.

For each size and backend: a world (``benchmarks.day.world``: the network nodes as processes),
the generated day (``benchmarks.day.generate``, a process), then the cut-off (``payswitch-
backoffice cutoff``) and ``payswitch-recon``, each a process of its own. Reported per step:
wall time, rows and rows/s (from the step's JSON lines; the cut-off's own steps too), and the
peak memory of every process (``os.wait4`` ``ru_maxrss`` for the steps,
``VmHWM`` from ``/proc/<pid>/status`` for the nodes); the total from cut-off to recon; whether
recon found exactly the injected discrepancies; and, with two sizes, how the time grew.
JSON and a text summary go to ``benchmarks/results/day-<UTC time>.{json,txt}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.day.inject import read_expected
from benchmarks.day.world import start_nodes, write_world
from switch.store.sqlite.store import BULK_WAL_AUTOCHECKPOINT

RESULTS = Path(__file__).resolve().parents[1] / "results"
BIN = Path(sys.executable).parent
STEP_TIMEOUT_S = 3_600.0
CASSANDRA = "127.0.0.1:9042"


@dataclass
class Step:
    name: str
    seconds: float
    peak_rss_mb: float
    exit: int
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """The most rows any of its JSON lines reports (the cut-off: its largest step's)."""
        return max((int(line.get("rows", 0) or 0) for line in self.lines), default=0)


def run_step(name: str, argv: list[str], run_dir: Path) -> tuple[Step, str]:
    """Run one step as a child process (stdout to ``<name>.out``, stderr to ``<name>.log``);
    its peak RSS from ``os.wait4`` (ru_maxrss, KiB) and its JSON lines."""
    out_path = run_dir / f"{name}.out"
    started = time.monotonic()
    with out_path.open("w") as out, (run_dir / f"{name}.log").open("w") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err)  # noqa: S603 - our own commands
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    text = out_path.read_text()
    lines = []
    for raw in text.splitlines():
        raw = raw.strip()
        if raw.startswith("{") and raw.endswith("}"):
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
    step = Step(name, round(seconds, 3), round(usage.ru_maxrss / 1024, 1), proc.returncode, lines)
    return step, text


def vm_hwm_mb(pid: int | None) -> float | None:
    """A live process's peak resident set (VmHWM), MiB."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def store_url(backend: str, run_dir: Path) -> tuple[str, str | None]:
    """The day's store URL (SQLite: the back office's larger WAL, ``BULK_WAL_AUTOCHECKPOINT``)
    and the Cassandra keyspace to drop after, if any."""
    if backend == "sqlite":
        wal = f"wal_autocheckpoint={BULK_WAL_AUTOCHECKPOINT}"
        return f"sqlite:///{run_dir / 'switch.db'}?{wal}", None
    keyspace = f"day_{uuid.uuid4().hex[:10]}"
    return f"cassandra://{CASSANDRA}/{keyspace}?replication=1", keyspace


def drop_keyspace(keyspace: str) -> None:
    from cassandra.cluster import Cluster

    host, _, port = CASSANDRA.partition(":")
    cluster = Cluster([host], port=int(port))
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
    finally:
        cluster.shutdown()


def cutoff_argv(store: str, topology: Path) -> list[str]:
    """``payswitch-backoffice cutoff``: the settlement run's steps, one JSON line each."""
    backoffice = str(BIN / "payswitch-backoffice")
    return [backoffice, "cutoff", "--topology", str(topology), "--store", store]


def one_day(size: int, backend: str, root: Path, terminals: int, seed: int) -> dict[str, Any]:
    run_dir = root / f"{backend}-{size}"
    topology = write_world(run_dir, terminals)
    store, keyspace = store_url(backend, run_dir)
    books = run_dir / "books"
    expected = run_dir / "expected.json"
    steps: list[Step] = []
    nodes: dict[str, float | None] = {}
    try:
        generated, _ = run_step(
            "generate",
            [sys.executable, "-m", "benchmarks.day.generate", "--store", store,
             "--topology", str(topology), "--books", str(books), "--count", str(size),
             "--seed", str(seed), "--expected", str(expected)],
            run_dir,
        )  # fmt: skip
        steps.append(generated)
        if generated.exit != 0:
            raise RuntimeError(f"generate failed: see {run_dir / 'generate.log'}")
        stack = start_nodes(topology, run_dir)
        try:
            steps.append(run_step("cutoff", cutoff_argv(store, topology), run_dir)[0])
            recon, recon_text = run_step(
                "recon",
                [str(BIN / "payswitch-recon"), "--store", store, "run",
                 "--dir", str(run_dir / "settlement"),
                 "--books", *sorted(str(p) for p in books.glob("*.db")),
                 "--topology", str(topology), "--json"],
                run_dir,
            )  # fmt: skip
            if not recon.lines:  # payswitch-recon's --json is the issue list: it read the day
                recon.lines.append({"step": "recon", "rows": size})
            steps.append(recon)
            nodes = {n: vm_hwm_mb(stack.pid(n)) for n in stack.node_ids}
        finally:
            stack.stop()
        found, exact = _recon_found(recon_text, expected)
    finally:
        if keyspace is not None:
            drop_keyspace(keyspace)
    back_office = [s for s in steps if s.name != "generate"]
    return {
        "size": size,
        "backend": backend,
        "steps": [
            {
                **asdict(s),
                "rows": s.rows,
                "rows_per_s": round(s.rows / s.seconds, 1) if s.seconds else None,
            }
            for s in steps
        ],
        "cutoff_to_recon_s": round(sum(s.seconds for s in back_office), 3),
        "nodes_peak_rss_mb": nodes,
        "peak_rss_mb": max(
            [s.peak_rss_mb for s in steps] + [v for v in nodes.values() if v is not None]
        ),
        "recon_found": found,
        "recon_exact": exact,
        "ok": all(s.exit in (0, 1) for s in steps) and exact,
    }


def _recon_found(text: str, expected: Path) -> tuple[dict[str, int], bool]:
    """What recon listed (its ``--json`` list) against what was injected: counts, and whether
    they are the same set of (type, kind, RRN)."""
    try:
        issues = json.loads(text)
    except json.JSONDecodeError:
        issues = []
    want = read_expected(expected)
    got = {(i["type"], i["kind"], i["rrn"]) for i in issues}
    counts = {
        "expected": len(want),
        "found": len(got),
        "extra": len(got - want),
        "missing": len(want - got),
    }
    return counts, got == want


def growth(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Per backend, the smallest and largest day: how much the cut-off-to-recon time grew
    against how much the day grew."""
    out: dict[str, Any] = {}
    for backend in sorted({d["backend"] for d in days}):
        mine = sorted((d for d in days if d["backend"] == backend), key=lambda d: d["size"])
        if len(mine) < 2 or not mine[0]["cutoff_to_recon_s"]:
            continue
        small, large = mine[0], mine[-1]
        out[backend] = {
            "from": small["size"],
            "to": large["size"],
            "size_factor": round(large["size"] / small["size"], 2),
            "time_factor": round(large["cutoff_to_recon_s"] / small["cutoff_to_recon_s"], 2),
        }
    return out


def summary(doc: dict[str, Any]) -> str:
    lines = [f"day benchmark {doc['started']} on {doc['machine']}"]
    for d in doc["days"]:
        lines.append(
            f"\n{d['backend']} {d['size']:,} transactions: cut-off to recon "
            f"{d['cutoff_to_recon_s']:.1f} s, peak RSS {d['peak_rss_mb']:.0f} MiB, recon "
            f"{'exact' if d['recon_exact'] else 'NOT exact'} {d['recon_found']}"
        )
        for s in d["steps"]:
            rate = f"{s['rows_per_s']:,.0f} rows/s" if s["rows_per_s"] else "-"
            lines.append(
                f"  {s['name']:<9} {s['seconds']:>9.1f} s {s['rows']:>10,} rows {rate:>16}"
                f"  peak {s['peak_rss_mb']:.0f} MiB  exit {s['exit']}"
            )
            if s["name"] == "cutoff":  # its steps, as payswitch-backoffice reports them
                for sub in s["lines"]:
                    secs = float(sub.get("seconds") or 0.0)
                    rows = int(sub.get("rows") or 0)
                    rate = f"{rows / secs:,.0f} rows/s" if secs and rows else "-"
                    lines.append(
                        f"    {sub.get('step', '?'):<9} {secs:>7.1f} s {rows:>10,} rows {rate:>16}"
                    )
        nodes = ", ".join(f"{k} {v:.0f}" for k, v in d["nodes_peak_rss_mb"].items() if v)
        lines.append(f"  nodes peak MiB: {nodes}")
    for backend, g in doc["growth"].items():
        lines.append(
            f"\n{backend}: {g['from']:,} -> {g['to']:,} (x{g['size_factor']}): "
            f"time x{g['time_factor']}"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.day.run", description=__doc__)
    p.add_argument("--sizes", default="100000,1000000", help="comma-separated day sizes")
    p.add_argument("--store", default="sqlite", help="sqlite, cassandra, or both (comma)")
    p.add_argument("--terminals", type=int, default=200)
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--keep", action="store_true", help="keep the run directories")
    args = p.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s]
    except ValueError:
        p.error("--sizes: comma-separated integers")
    backends = [b for b in args.store.split(",") if b]
    if not sizes or any(n < 1_000 for n in sizes):
        p.error("--sizes: each at least 1000")
    if not backends or any(b not in ("sqlite", "cassandra") for b in backends):
        p.error("--store: sqlite, cassandra or both")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    root = args.out / f"day-{stamp}"
    days = []
    for backend in backends:
        for size in sizes:
            print(f"day: {backend} {size:,} ...", flush=True)
            days.append(one_day(size, backend, root, args.terminals, args.seed))
            print(json.dumps(days[-1]), flush=True)
    doc = {
        "started": stamp,
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpu",
        "days": days,
        "growth": growth(days),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"day-{stamp}.json").write_text(json.dumps(doc, indent=1))
    text = summary(doc)
    (args.out / f"day-{stamp}.txt").write_text(text)
    print(text)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if all(d["ok"] for d in days) else 1


if __name__ == "__main__":
    sys.exit(main())
