"""Real Cassandra nodes for tests: a thin wrapper over `scripts/cassandra/cassctl.py`.

- `ensure_single_node()` returns the contact point of a node answering CQL on 127.0.0.1:9042,
  starting the single dev node (1 GiB heap) unless something already answers there. The node is
  left running for the next test run (~6-8 s saved per start); `make cassandra-down` stops it.
- `start_cluster()` starts (or reuses) three nodes on 127.0.0.1..3 (512 MiB heaps each) and
  waits until every node sees all three Up/Normal. It stops the single node first: both use
  127.0.0.1:7000/9042 (CASSANDRA_CLUSTER_BASE=11 puts the cluster on 127.0.0.11-13 instead, so
  both can run). Stop it again with `stop_cluster()` when the test is done.
- `kill_node(i, hard=True)` stops cluster node i with SIGKILL (hard) or SIGTERM (drain) and
  returns once the process is gone; `start_node(i)` restarts it and waits until all running
  nodes see each other Up.

Every wait is bounded (CASSANDRA_START_TIMEOUT, default 180 s) and fails with the tail of the
node's log. Starts and stops are serialised across processes by a lock file, so parallel test
processes do not start two nodes on one address. Data lives under `.cassandra/` (`python3
scripts/cassandra/cassctl.py wipe all` deletes it).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cassandra" / "cassctl.py"
_spec = importlib.util.spec_from_file_location("payswitch_cassctl", _SCRIPT)
assert _spec is not None and _spec.loader is not None
cassctl = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("payswitch_cassctl", cassctl)
_spec.loader.exec_module(cassctl)

PORT = cassctl.CQL_PORT
CLUSTER_SIZE = 3
CassandraError = cassctl.CassandraError


def ensure_single_node() -> str:
    """Contact point (host) of a node answering CQL on 127.0.0.1:9042; starts one if needed."""
    return cassctl.up()


def start_cluster() -> list[str]:
    """Contact points of the three-node cluster, started (or reused) and all Up."""
    return cassctl.cluster_up(CLUSTER_SIZE)


def cluster_address(i: int) -> str:
    return cassctl.cluster_nodes(CLUSTER_SIZE)[i - 1].address


def kill_node(i: int, hard: bool = True) -> None:
    """Stop cluster node i (1-based): SIGKILL if hard, else SIGTERM with drain."""
    cassctl.stop(cassctl.cluster_nodes(CLUSTER_SIZE)[i - 1], hard=hard)


def start_node(i: int) -> None:
    """(Re)start cluster node i and wait until all running nodes see each other Up."""
    cassctl.start_cluster_node(i, CLUSTER_SIZE)


def stop_cluster() -> None:
    """Stop the cluster nodes only (graceful, in parallel; SIGKILL after a timeout)."""
    cassctl.cluster_down(CLUSTER_SIZE)


def stop_all() -> None:
    """Stop the cluster and the single node. Other test processes may be using the single
    node: a test that only needs its cluster gone calls `stop_cluster()`."""
    stop_cluster()
    cassctl.down()
