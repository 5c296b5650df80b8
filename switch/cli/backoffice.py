"""``payswitch-backoffice``: the back office's settlement run as its own process (issue 17).

    payswitch-backoffice cutoff --topology T.toml --store URL [--now UNIX_S]
                         [--steps sweep,close,clear,settle,apply,expire] [--dir DIR]
                         [--certs DIR]

Runs the cut-off (``switch.backoffice.settlement.run.run_cutoff``) with the switch's own hooks
(the ledger, as ``switch.backoffice.settlement.scheduler`` does), so a benchmark or a crash test
can time it, kill it and run it again as a separate process. Prints one JSON line per step as
it ends (``{"step", "rows", "seconds"}``) on stdout; logs go to stderr. ``--dir``: the
settlement directory (default: the topology's ``[settlement] dir``); ``--certs``: the switch's
certificate folder, for the network identity when the topology's network is TLS (default: the
switch's). Exit status 0; 2 on a bad argument (named), with nothing run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from pathlib import Path

import structlog

from payswitch import logs, tls
from payswitch.process import private_files
from payswitch.world.topology import Topology, load
from switch.backoffice.settlement.context import StepStat
from switch.backoffice.settlement.run import run_cutoff
from switch.backoffice.settlement.scheduler import switch_hooks
from switch.backoffice.settlement.steps import STEPS, select
from switch.store import open_store

DEFAULT_CERTS_DIR = Path(".run/certs/switch")


class Refused(ValueError):
    """A bad argument: exit 2, nothing run."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="payswitch-backoffice", description="the back office's settlement run"
    )
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("cutoff", help="run the cut-off (all steps or --steps)")
    c.add_argument("--topology", required=True, help="topology TOML")
    c.add_argument("--store", required=True, help="state store URL (as the switch's)")
    c.add_argument("--now", help="the cut-off instant, Unix seconds (default: now)")
    c.add_argument("--steps", help=f"comma-separated subset of {','.join(s.name for s in STEPS)}")
    c.add_argument("--dir", help="settlement directory (default: the topology's)")
    c.add_argument("--certs", help="the switch's certificate folder (TLS network)")
    return p


def _now(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise Refused(f"--now: not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise Refused(f"--now: must be a positive Unix time, not {text!r}")
    return value


def _steps(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise Refused("--steps: empty")
    try:
        select(STEPS, names)
    except ValueError as exc:
        raise Refused(f"--steps: {exc}") from None
    return names


def _topology(path: str) -> Topology:
    try:
        return load(path)
    except (OSError, ValueError) as exc:
        raise Refused(f"--topology: {exc}") from None


def _emit(stat: StepStat) -> None:
    line = {"step": stat.name, "rows": stat.rows, "seconds": round(stat.seconds, 3)}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def _cutoff(args: argparse.Namespace) -> int:
    now, steps = _now(args.now), _steps(args.steps)
    topology = _topology(args.topology)
    credentials = None
    if topology.network.tls:
        certs = Path(args.certs or topology.switch.certs_dir or DEFAULT_CERTS_DIR)
        try:
            credentials = tls.network_client_credentials(certs)
        except (OSError, ValueError) as exc:
            raise Refused(f"--certs: {exc}") from None
    try:
        opened = open_store(args.store)
    except ValueError as exc:
        raise Refused(f"--store: {exc}") from None
    async with opened as store:
        await run_cutoff(
            store,
            topology,
            directory=Path(args.dir) if args.dir else None,
            now=now,
            hooks=switch_hooks(store, topology),
            credentials=credentials,
            steps=steps,
            on_step=_emit,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    private_files()
    args = _parser().parse_args(argv)  # argparse itself exits 2 naming a missing argument
    logs.configure("backoffice")
    structlog.configure(logger_factory=structlog.BytesLoggerFactory(file=sys.stderr.buffer))
    try:
        return asyncio.run(_cutoff(args))
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
