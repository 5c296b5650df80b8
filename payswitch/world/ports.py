"""Free loopback ports for topologies, so that tests can run whole stacks side by side."""

from __future__ import annotations

import copy
import fcntl
import os
import random
import socket
import tempfile
import threading
import tomllib
from pathlib import Path
from typing import Any

from payswitch.world import tomlw
from payswitch.world.topology import Topology, parse

_NODE_SECTIONS = ("acquirers", "schemes", "issuers")


# Where reservations are kept: one lock file per port, locked (flock) by the process that
# picked it for as long as it holds it. The kernel drops the lock when that process dies.
LOCK_DIR = Path(tempfile.gettempdir()) / "payswitch-ports"
_LOWEST = 10_000  # below this, the fixed ports of well-known services (Cassandra's 9042...)
_MAX_HELD = 4096  # reservations a process keeps; past this its oldest are released
_held: dict[int, int] = {}  # port -> the descriptor of its locked file, oldest first
_lock = threading.Lock()


def _ephemeral() -> tuple[int, int]:
    """The kernel's range for ports it picks itself (outgoing connections, bind to 0)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _candidates() -> range:
    """Ports outside the kernel's ephemeral range: no outgoing connection and no ``bind`` to
    port 0 (another program's "any free port") is ever given one of them."""
    low, high = _ephemeral()
    below, above = range(_LOWEST, low), range(high + 1, 65536)
    return below if len(below) >= len(above) else above


def _reserve(port: int) -> bool:
    """Take ``port``'s lock and check nothing listens on it; False if either fails."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_DIR / str(port), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another process (or stack) holds it
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", port))  # in use by some program that does not take locks
    except OSError:
        os.close(fd)
        return False
    _held[port] = fd
    while len(_held) > _MAX_HELD:
        os.close(_held.pop(next(iter(_held))))
    return True


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports, free on 127.0.0.1 and reserved for this process until
    ``release``.

    Picked lazily and bound later by a node, a port could be lost in between (a slow start,
    a killed switch down for a while): a port from the kernel's ephemeral range can be handed
    to any outgoing connection or to another program's bind to port 0 meanwhile. So ports
    come from outside that range, each reserved by a lock file that every user of this
    function respects (other test runs, other worktrees' harnesses), held until ``release``
    (``Stack.stop``) or the process's end. Only a program binding a fixed port of its own can
    still take one; the node then fails loudly.
    """
    candidates = _candidates()
    rng = random.SystemRandom()
    picked: list[int] = []
    with _lock:
        for _ in range(100 * count):  # bounded: a busy machine still has thousands free
            if len(picked) == count:
                break
            port = rng.choice(candidates)
            if port not in _held and _reserve(port):
                picked.append(port)
    if len(picked) == count:
        return picked
    release(picked)
    raise OSError(f"no {count} free ports found in {candidates.start}-{candidates.stop - 1}")


def release(ports: list[int]) -> None:
    """Give back reservations made by ``free_ports`` (unknown ports are ignored)."""
    with _lock:
        for port in ports:
            fd = _held.pop(port, None)
            if fd is not None:
                os.close(fd)


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
