"""``payswitch-node`` / ``python -m stack.node``: run one simulated network node.

The node's kind (acquirer, scheme or issuer) comes from the topology by its id, so every
node is started the same way: ``payswitch-node --topology FILE --id NODE_ID``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvloop

from network.hsm_node import NodeHsmError, set_pin_file
from network.server import run_until_signal
from network.transport import NodeTls
from payswitch import logs, startgate, tracing
from payswitch.process import private_files
from payswitch.world.topology import Topology, TopologyError, load
from stack.nodes import build, factory


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="payswitch-node", description=__doc__)
    p.add_argument("--topology", required=True, help="topology TOML file")
    p.add_argument("--id", required=True, dest="node_id", help="node id in the topology")
    p.add_argument(
        "--books-dir",
        default=None,
        help="issuer books directory (default: a new temporary directory)",
    )
    p.add_argument(
        "--certs-dir",
        default=None,
        help="this node's own certificate folder (payswitch-certs: <certs>/nodes/<id>)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed for latency and fault draws")
    p.add_argument(
        "--hsm-pin-file",
        default=None,
        help="this node's HSM token PIN file (default: <hsm home>/pins/<id>.pin)",
    )
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


async def serve(
    topology: Topology,
    node_id: str,
    books_dir: str | Path | None,
    seed: int | None,
    certs_dir: str | Path | None,
) -> None:
    """Serve the node; with ``[network] tls`` only from its own certificate folder (a node
    without one does not start: fail closed)."""
    if topology.network.tls:
        if certs_dir is None:
            raise OSError("[network] tls is on: --certs-dir (the node's own folder) is required")
        security = NodeTls.from_dir(certs_dir)
    else:
        security = NodeTls.plaintext()
    app = await build(topology, node_id, seed=seed, books_dir=books_dir, security=security)
    await run_until_signal(app, security)


def main(argv: list[str] | None = None) -> None:
    private_files()
    args = parse_args(argv)
    try:
        topology = load(args.topology)
        factory(topology.node_kind(args.node_id))  # its kind's code imported
    except (OSError, TopologyError) as exc:
        sys.exit(f"payswitch-node: {exc}")
    startgate.wait_for_go()  # started ahead of a planned restart: held here until due
    logs.configure(args.node_id, args.log_level)
    tracing.install(args.node_id, topology.tracing)
    if args.hsm_pin_file:
        set_pin_file(args.node_id, args.hsm_pin_file)
    try:
        uvloop.run(serve(topology, args.node_id, args.books_dir, args.seed, args.certs_dir))
    except KeyboardInterrupt:
        sys.exit(130)
    except (OSError, TopologyError) as exc:
        sys.exit(f"payswitch-node {args.node_id}: {exc}")
    except NodeHsmError as exc:  # fail closed: an acquirer or issuer without its HSM
        sys.exit(f"payswitch-node: {exc}")


if __name__ == "__main__":
    main()
