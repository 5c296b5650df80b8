"""Which module builds which kind of node: the one place that maps a topology kind to code.

A node process imports only its own kind's code (an acquirer has no use for the issuer's
books): each kind's module is imported when a node of that kind is built.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from network.server import NodeApp
from network.transport import NodeTls
from payswitch.world.topology import Topology

Factory = Callable[..., Awaitable[NodeApp]]


def factory(kind: str) -> Factory:
    """The ``create`` of ``kind``'s node module (acquirer, scheme or issuer)."""
    if kind == "acquirer":
        from acquirer import node as acquirer

        return acquirer.create
    if kind == "scheme":
        from scheme import node as scheme

        return scheme.create
    if kind == "issuer":
        from issuer import node as issuer

        return issuer.create
    raise KeyError(kind)


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
    return await factory(kind)(topology, node_id, seed=seed, books_dir=books_dir, client=client)
