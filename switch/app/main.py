"""``payswitch-switch`` / ``python -m switch.app.main``: run one switch process."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys

import uvloop

from payswitch import logs, tracing
from payswitch.process import PARENT_PID_ENV, private_files, watch_parent
from payswitch.world.topology import load
from switch.app.server import Switch
from switch.cardsec.factory import build_protector
from switch.store import open_store
from switch.store.traced import traced


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="payswitch-switch", description=__doc__)
    p.add_argument("--topology", required=True, help="topology TOML file")
    p.add_argument(
        "--store",
        default="sqlite:///.run/switch.db",
        help="sqlite:///path/to/file.db (default) or cassandra://host1,host2/keyspace",
    )
    p.add_argument("--listen", default=None, help="override the topology's switch address")
    p.add_argument(
        "--certs-dir",
        default=None,
        help="the switch's own certificate folder (payswitch-certs; .run/certs/switch)",
    )
    p.add_argument("--admin-listen", default=None, help="override the admin port's address")
    p.add_argument("--metrics-listen", default=None, help="override the /metrics address")
    p.add_argument(
        "--hsm-pin-file",
        default=None,
        help="the switch token's user PIN file (default: <hsm home>/pins/switch.pin)",
    )
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    topology = load(args.topology)
    logs.configure(topology.switch.id, args.log_level)
    store = open_store(args.store)
    if tracing.install(topology.switch.id, topology.tracing) is not None:
        store = traced(store)  # every store call a span (switch.store.traced)
    protector = await build_protector(args.hsm_pin_file)
    switch = Switch(
        topology,
        store,
        protector,
        listen=args.listen,
        certs_dir=args.certs_dir,
        admin_listen=args.admin_listen,
        metrics_listen=args.metrics_listen,
    )
    await switch.start()
    # Start-up's objects (modules, protos, topology, rules) live as long as the process: out of
    # the collector's generations, so each full collection under load walks only new objects.
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The operator's manual cut-off: close batches and run clearing now.
    loop.add_signal_handler(signal.SIGUSR1, switch.cutoff.trigger)
    # Started by payswitch-stack: stop with the launcher even if it dies by kill -9.
    parent = os.environ.get(PARENT_PID_ENV, "")
    watcher = asyncio.create_task(watch_parent(int(parent), stop)) if parent.isdigit() else None
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    await switch.stop()


def main(argv: list[str] | None = None) -> None:
    private_files()
    args = parse_args(argv)
    try:
        uvloop.run(serve(args))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
