"""The day benchmark's world: the default topology with a fleet of terminals over its
merchants and a restaurant (so tips occur), plaintext network hops (the benchmark measures the
back office, not TLS), no wall-clock cut-off, and its settlement files in the run directory.

Only the network nodes run (acquirers, schemes, issuers: ``stack.launcher.Stack`` with
``switch=False``): the back office calls the acquirers' ``Settle`` and the issuers'
``ExpireHolds``; no authorization is sent.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from benchmarks.world import DEFAULT_TOPOLOGY, make_keys, make_token
from payswitch.world.ports import with_free_ports, write_topology
from stack.launcher import Stack

BISTRO = {
    "id": "M-BISTRO",
    "name": "Bistro",
    "mcc": "5812",
    "acquirers": ["acq-alpha", "acq-beta"],
}


def day_topology(run_dir: Path, terminals: int) -> dict[str, Any]:
    """The default world plus ``terminals`` terminals spread over its merchants and a bistro."""
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    if not any(m["id"] == BISTRO["id"] for m in doc["merchants"]):
        doc["merchants"].append(dict(BISTRO))
    merchants = [m["id"] for m in doc["merchants"]]
    doc["terminals"] = [
        *doc["terminals"],
        *(
            {"id": f"T-D{i:05d}", "merchant": merchants[i % len(merchants)]}
            for i in range(terminals)
        ),
    ]
    doc["network"] = {"tls": False}
    settlement = doc.setdefault("settlement", {})
    settlement["auto_close"] = False
    settlement["dir"] = str(run_dir / "settlement")
    doc.setdefault("standin", {})["files_dir"] = str(run_dir / "standin")
    return doc


def write_world(run_dir: Path, terminals: int) -> Path:
    """The topology file on free ports, with every party's keys in a throwaway token."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "topology.toml"
    write_topology(with_free_ports(day_topology(run_dir, terminals)), path)
    make_token(run_dir / "hsm")
    make_keys(path)
    return path


def start_nodes(topology: Path, run_dir: Path) -> Stack:
    """Issuers, schemes and acquirers as processes; books in ``<run_dir>/books``."""
    return Stack(topology, run_dir, switch=False, ready_timeout=60.0).start()
