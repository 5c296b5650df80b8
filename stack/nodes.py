"""Which module builds which kind of node: the one place that maps a topology kind to code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from acquirer import node as acquirer
from issuer import node as issuer
from network.server import NodeApp
from network.transport import NodeTls
from payswitch.world.topology import Topology
from scheme import node as scheme

Factory = Callable[..., Awaitable[NodeApp]]

FACTORIES: dict[str, Factory] = {
    "acquirer": acquirer.create,
    "scheme": scheme.create,
    "issuer": issuer.create,
}


async def build(
    topology: Topology,
    node_id: str,
    *,
    seed: int | None = None,
    books_dir: str | Path | None = None,
    security: NodeTls | None = None,
) -> NodeApp:
    """The node ``node_id`` of ``topology``, ready to be served (books open, channels made);
    it dials its next hops with ``security``'s client credentials (None: plaintext)."""
    kind = topology.node_kind(node_id)
    client = security.client if security is not None else None
    return await FACTORIES[kind](topology, node_id, seed=seed, books_dir=books_dir, client=client)
