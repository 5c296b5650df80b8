"""Free loopback ports for topologies, so that tests can run whole stacks side by side."""

from __future__ import annotations

import copy
import socket
import tomllib
from pathlib import Path
from typing import Any

from payswitch.world import tomlw
from payswitch.world.topology import Topology, parse

_NODE_SECTIONS = ("acquirers", "schemes", "issuers")


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free on 127.0.0.1 a moment ago.

    All sockets stay open until every port is picked, so no port is handed out twice. Another
    process may still take one before the node binds it; the node then fails loudly.
    """
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def with_free_ports(topology: dict[str, Any] | str) -> dict[str, Any]:
    """A copy of a topology document (dict or TOML text) with every listen address (switch,
    acquirers, schemes, issuers) moved to a free 127.0.0.1 port."""
    doc = tomllib.loads(topology) if isinstance(topology, str) else copy.deepcopy(topology)
    nodes = [n for section in _NODE_SECTIONS for n in doc.get(section, [])]
    switch = doc.setdefault("switch", {})
    # The switch's admin and metrics ports move too when the document has them.
    extra = [key for key in ("admin_listen", "metrics_listen") if switch.get(key)]
    ports = free_ports(len(nodes) + 1 + len(extra))
    switch["listen"] = f"127.0.0.1:{ports.pop()}"
    for key in extra:
        switch[key] = f"127.0.0.1:{ports.pop()}"
    for node, port in zip(nodes, ports, strict=True):
        node["listen"] = f"127.0.0.1:{port}"
    return doc


def write_topology(doc: dict[str, Any], path: str | Path) -> Topology:
    """Write a topology document as TOML after checking it parses; returns the Topology."""
    path = Path(path)
    text = tomlw.dumps(doc)
    topology = parse(tomllib.loads(text), path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return topology
