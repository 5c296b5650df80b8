"""The whole simulated network inside one event loop, for tests that need no processes.

Same node code, ports and (with ``[network] tls``) certificates as the processes (the topology's
addresses, each node's folder under ``certs_dir``), started issuers first;
``make run`` and the end-to-end tests use real processes (``stack.launcher``) instead.
"""

from __future__ import annotations

from pathlib import Path

from network.server import NodeServer
from network.transport import NodeTls
from payswitch.world.topology import Topology, all_nodes
from stack.nodes import build


class LocalNetwork:
    def __init__(self) -> None:
        self.servers: dict[str, NodeServer] = {}

    async def stop(self) -> None:
        """Stop every node, acquirers first."""
        for server in reversed(list(self.servers.values())):
            await server.stop(grace=0)
        self.servers.clear()


async def start_network(
    topology: Topology,
    books_dir: str | Path,
    *,
    seed: int | None = None,
    certs_dir: str | Path | None = None,
) -> LocalNetwork:
    """Serve every node of ``topology`` in the running loop; issuer books under ``books_dir``,
    certificates (``payswitch-certs``) under ``certs_dir`` when the network is mTLS."""
    network = LocalNetwork()
    try:
        for _kind, node_id, _listen in all_nodes(topology):
            security = NodeTls.of_node(topology.network.tls, certs_dir, node_id)
            app = await build(topology, node_id, seed=seed, books_dir=books_dir, security=security)
            server = NodeServer(app, security)
            await server.start()
            network.servers[node_id] = server
    except BaseException:
        await network.stop()
        raise
    return network
