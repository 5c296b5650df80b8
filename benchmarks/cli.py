"""``payswitch-bench``: start the stack, drive it, measure the ceiling beside it, report.

    payswitch-bench            # the full suite, under 10 minutes on two cores
    payswitch-bench --quick    # smoke run, under a minute

Writes ``report.json``, ``summary.txt`` (also printed) and three PNG plots to
``benchmarks/results/<timestamp>/``. Figures taken while other work runs on the machine are
provisional: the summary shows how much CPU other processes took during the run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from benchmarks import loadgen, suite

RESULTS = Path(__file__).resolve().parent / "results"

# (full, quick) defaults of every option that --quick changes.
_DEFAULTS: dict[str, tuple[object, object]] = {
    "duration": (10.0, 2.0),
    "warmup": (5.0, 1.0),
    "concurrency": ("1,4,16,64", "1,8"),
    "refine": (2, 0),
    "mix_seconds": (15.0, 2.0),
    "terminals": (200, 40),
    "ghz_concurrency": (16, 8),
    "ceiling_duration": (8.0, 2.0),
    "deps_seconds": (2.0, 0.3),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="payswitch-bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: short phases, few levels")
    p.add_argument("--duration", type=float, help="seconds per measured phase (10; quick 2)")
    p.add_argument("--warmup", type=float, help="warm-up seconds, excluded (5; quick 1)")
    p.add_argument("--concurrency", help="closed-loop levels (1,4,16,64; quick 1,8)")
    p.add_argument("--rates", help="open-loop rates per second (default: from the closed peak)")
    p.add_argument("--refine", type=int, help="bisection steps towards the best rate (2; quick 0)")
    p.add_argument("--mix-seconds", type=float, help="seconds of the mixed workload (15; quick 2)")
    p.add_argument("--deadline-ms", type=float, default=2000.0, help="per-request deadline")
    p.add_argument("--p99-target-ms", type=float, default=100.0, help="the sweep's p99 bar")
    p.add_argument("--terminals", type=int, help="terminals in the fleet (200; quick 40)")
    p.add_argument("--channels", type=int, default=4, help="gRPC connections per target")
    p.add_argument("--max-requests", type=int, default=200_000, help="per phase, a hard bound")
    p.add_argument(
        "--max-in-flight",
        type=int,
        default=4096,
        help="open loop: beyond this the generator counts requests as not sent (and missed)",
    )
    p.add_argument(
        "--synchronous",
        choices=("full", "normal"),
        default="full",
        help="the switch's SQLite synchronous mode",
    )
    p.add_argument(
        "--store",
        choices=("sqlite", "cassandra", "cassandra-cluster"),
        default="sqlite",
        help="the switch's store: SQLite, the Cassandra dev node (127.0.0.1), or the three-node "
        "cluster on CASSANDRA_CLUSTER_BASE (replication 3, QUORUM); a fresh keyspace each",
    )
    p.add_argument(
        "--switches", type=int, default=1, help="switch processes on the store (Cassandra only)"
    )
    p.add_argument("--no-latency", action="store_true", help="strip the simulated network latency")
    p.add_argument(
        "--no-risk", action="store_true", help="without the risk stage (to compare with it on)"
    )
    p.add_argument(
        "--no-risk-compare",
        action="store_true",
        help="skip the closed-loop peak's level again on a stack without the risk stage",
    )
    p.add_argument("--ghz", dest="ghz_path", help="ghz binary (default: PATH, then ~/go/bin)")
    p.add_argument("--no-ghz", action="store_true", help="do not run ghz")
    p.add_argument("--ghz-concurrency", type=int, help="ghz workers (16; quick 8)")
    p.add_argument("--no-ceiling", action="store_true", help="skip the echo and 4-hop ceilings")
    p.add_argument("--ceiling-duration", type=float, help="seconds per ceiling level (8; quick 2)")
    p.add_argument("--no-deps", action="store_true", help="skip the HSM and store rates")
    p.add_argument("--deps-seconds", type=float, help="seconds per HSM measure (2; quick 0.3)")
    p.add_argument(
        "--closed-only",
        action="store_true",
        help="the closed loop only (CPU per authorization at its peak): no sweep, mix or ghz",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="py-spy flame graph of the switch at the closed-loop peak (flame-switch.svg)",
    )
    p.add_argument(
        "--soak",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="after the closed loop, an open loop at half its peak for this long (make soak: "
        "600), p99 and every process's resident memory per window; no sweep, mix or ghz",
    )
    p.add_argument("--soak-window", type=float, default=60.0, help="seconds per soak window (60)")
    p.add_argument("--no-plots", action="store_true", help="JSON and summary only")
    p.add_argument("--results-dir", type=Path, default=RESULTS, help="parent of the run folder")
    p.add_argument(
        "--keep-run-dir",
        action="store_true",
        help="keep logs, books and store under <run folder>/run",
    )
    args = p.parse_args(argv)
    if args.switches < 1 or (args.switches > 1 and args.store == "sqlite"):
        p.error("--switches: at least 1, and more than 1 only with a Cassandra --store")
    for name, (full, quick) in _DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def settings_from(args: argparse.Namespace, out_dir: Path) -> suite.Settings:
    return suite.Settings(
        out_dir=out_dir,
        quick=args.quick,
        duration_s=args.duration,
        warmup_s=args.warmup,
        concurrency=loadgen.concurrency_list(args.concurrency),
        rates=loadgen.rate_list(args.rates) if args.rates else None,
        refine=args.refine,
        mix_s=args.mix_seconds,
        deadline_s=args.deadline_ms / 1000.0,
        p99_target_ms=args.p99_target_ms,
        terminals=args.terminals,
        channels=args.channels,
        max_requests=args.max_requests,
        max_in_flight=args.max_in_flight,
        synchronous=args.synchronous,
        latency=not args.no_latency,
        risk=not args.no_risk,
        ghz_path=args.ghz_path,
        ghz=not (args.no_ghz or args.closed_only or args.soak > 0),
        ghz_concurrency=args.ghz_concurrency,
        ceiling=not args.no_ceiling,
        ceiling_duration_s=args.ceiling_duration,
        deps=not args.no_deps,
        deps_seconds=args.deps_seconds,
        keep_run_dir=args.keep_run_dir,
        closed_only=args.closed_only,
        profile=args.profile,
        risk_compare=not args.no_risk_compare,
        store=args.store,
        switches=args.switches,
        soak_s=args.soak,
        soak_window_s=args.soak_window,
    )


def new_out_dir(parent: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(100):
        path = parent / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot make a results folder under {parent}")


def write_report(outcome: suite.Outcome, out_dir: Path, plots: bool) -> dict:
    from benchmarks import report

    files = {"report": str(out_dir / "report.json"), "summary": str(out_dir / "summary.txt")}
    rep = report.build(outcome, files)
    if plots:
        from benchmarks import plots as drawing

        for name, fname in drawing.draw(rep, out_dir).items():
            files[name] = str(out_dir / fname)
    rep["files"] = files
    (out_dir / "report.json").write_text(json.dumps(rep, indent=1) + "\n")
    summary = report.text(rep)
    (out_dir / "summary.txt").write_text(summary)
    print()
    print(summary, end="")
    return rep


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        out_dir = new_out_dir(args.results_dir)
        settings = settings_from(args, out_dir)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"payswitch-bench: {exc}", file=sys.stderr)
        return 2
    if args.keep_run_dir:
        run_dir = out_dir / "run"
        run_dir.mkdir()
    else:
        run_dir = Path(tempfile.mkdtemp(prefix="payswitch-bench-"))
    print(f"payswitch-bench: results in {out_dir}", flush=True)
    failed = True
    try:
        outcome = uvloop.run(suite.run(settings, run_dir))
        write_report(outcome, out_dir, plots=not args.no_plots)
        failed = False
    except KeyboardInterrupt:
        print("payswitch-bench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line and the logs, not a bare traceback
        print(f"payswitch-bench: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"payswitch-bench: logs and stores kept in {run_dir}", file=sys.stderr)
        return 1
    finally:
        if not args.keep_run_dir and not failed:
            shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
