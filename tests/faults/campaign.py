"""A fault campaign: ``make faults SEEDS=1..1000 STORE=sqlite|cassandra [JOBS=n]``.

Splits the seed range into ``--jobs`` contiguous chunks, runs one harness process per chunk
(``python -m tests.faults.harness``, under ``nice`` so a shared machine stays usable), each
with its own work directory and throwaway SoftHSM token, and appends one line per campaign to
the committed log (``tests/faults/campaign.log``): when, the commit (``+dirty`` when the tree
had changes, which a campaign for the README table must not have), store, seed range,
payments per seed, passed, failed (and which), wall time. Each chunk's full output stays in
the work directory (``--work-dir``), failing seeds' run directories with it.
Exit status 0 when every seed passed.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOG = REPO / "tests" / "faults" / "campaign.log"
RESULT = re.compile(r"^\[seed (\d+)\] (ok|FAILED) in ([0-9.]+) s")


def seed_range(text: str) -> range:
    """``a..b`` (inclusive) or ``n`` (seeds 1..n)."""
    first, sep, last = text.partition("..")
    if not sep:
        return range(1, int(first) + 1)
    if int(last) < int(first):
        raise argparse.ArgumentTypeError(f"SEEDS={text}: the range is empty")
    return range(int(first), int(last) + 1)


def chunks(seeds: range, jobs: int) -> list[range]:
    """``jobs`` contiguous chunks of ``seeds``, sizes differing by at most one."""
    n, jobs = len(seeds), max(1, min(jobs, len(seeds)))
    out, start = [], seeds.start
    for i in range(jobs):
        size = n // jobs + (1 if i < n % jobs else 0)
        out.append(range(start, start + size))
        start += size
    return out


def commit() -> str:
    head = subprocess.run(
        ["git", "rev-parse", "--short=10", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        # The log itself is left out: a previous campaign's line makes no code differ.
        [
            "git",
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":!tests/faults/campaign.log",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return head + ("+dirty" if dirty else "")


def run(args: argparse.Namespace) -> int:
    seeds: range = args.seeds
    work = Path(args.work_dir or f"/tmp/payswitch-faults-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True)
    started, rev = time.monotonic(), commit()
    procs = []
    for i, part in enumerate(chunks(seeds, args.jobs)):
        out = (work / f"job-{i}.out").open("w")
        cmd = [
            "nice", "-n", str(args.nice), sys.executable, "-m", "tests.faults.harness",
            "--first-seed", str(part.start), "--seeds", str(len(part)),
            "--payments", str(args.payments), "--store", args.store,
            "--switches", str(args.switches),
            "--work-dir", str(work / f"job-{i}"),
        ]  # fmt: skip
        procs.append((subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT), out))
    interrupted = []

    def stop(signum: int, _frame: object) -> None:
        # Stopped early (a shared machine wanted its cores back): the seeds that finished are
        # still logged, the unfinished ones neither passed nor failed.
        interrupted.append(signum)
        for proc, _ in procs:
            proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for proc, out in procs:
        proc.wait()
        out.close()
    passed, failed, seconds = set(), set(), []
    for i in range(len(procs)):
        for line in (work / f"job-{i}.out").read_text().splitlines():
            m = RESULT.match(line)
            if m:
                (passed if m[2] == "ok" else failed).add(int(m[1]))
                seconds.append(float(m[3]))
    missing = set(seeds) - passed - failed  # a chunk that died: its seeds count as failed
    if not interrupted:
        failed |= missing
    wall = time.monotonic() - started
    mean = sum(seconds) / len(seconds) if seconds else 0.0
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%MZ")
    failures = " ".join(map(str, sorted(failed))) or "-"
    line = (
        f"{when} commit {rev} store {args.store} switches {args.switches}"
        f" seeds {seeds.start}..{seeds[-1]}"
        f" payments {args.payments} jobs {len(procs)} passed {len(passed - failed)}"
        f" failed {len(failed)} [{failures}] wall {wall:.0f}s mean {mean:.1f}s/seed"
    )
    if interrupted:
        line += f" (stopped early: {len(missing)} seeds not run)"
    print(line)
    print(f"outputs: {work}")
    if not args.no_log:
        with Path(args.log).open("a") as f:
            f.write(line + "\n")
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.faults.campaign", description=__doc__)
    p.add_argument("--seeds", type=seed_range, default=seed_range("1..10"), help="a..b or n")
    p.add_argument("--store", choices=("sqlite", "cassandra", "cluster"), default="sqlite")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="harness processes")
    p.add_argument("--payments", type=int, default=40)
    p.add_argument("--switches", type=int, default=1, help="switch processes (cassandra)")
    p.add_argument("--nice", type=int, default=10)
    p.add_argument("--work-dir", default=None)
    p.add_argument("--log", default=str(LOG))
    p.add_argument("--no-log", action="store_true", help="do not append to the campaign log")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run(parse_args()))
