"""The state store the load suite's switch runs on: SQLite (the default), the Cassandra dev
node, or a three-node Cassandra cluster (replication 3, QUORUM).

Why a choice: the issue's question is what the production store costs under the same load
(``payswitch-bench --store cassandra``; ``--switches N`` puts N switch processes on it). The
suite never starts or stops Cassandra: the dev node is shared (``scripts/cassandra/cassctl.py
up``), the cluster is the operator's (``CASSANDRA_CLUSTER_BASE=<b> cassctl.py cluster-up``,
nodes on 127.0.0.<b>..<b+2>). Each stack gets a fresh keyspace, dropped at the end.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("sqlite", "cassandra", "cassandra-cluster")
CQL_PORT = 9042


@dataclass
class BenchStore:
    url: str
    described: str  # for the report: no run folder, no random keyspace
    hosts: list[str] = field(default_factory=list)
    keyspace: str | None = None

    def drop(self) -> None:
        """Drop the run's keyspace (Cassandra); best effort, the run's figures are taken."""
        if self.keyspace is None:
            return
        from cassandra.cluster import Cluster

        cluster = Cluster(self.hosts, port=CQL_PORT)
        try:
            cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {self.keyspace}", timeout=60)
        except Exception as exc:
            print(f"stores: keyspace {self.keyspace} not dropped: {exc}", flush=True)
        finally:
            cluster.shutdown()


def _answers(host: str) -> bool:
    try:
        with socket.create_connection((host, CQL_PORT), timeout=2.0):
            return True
    except OSError:
        return False


def cluster_hosts() -> list[str]:
    base = int(os.environ.get("CASSANDRA_CLUSTER_BASE", "1"))
    return [f"127.0.0.{base + i}" for i in range(3)]


def choose(kind: str, run_dir: Path, synchronous: str) -> BenchStore:
    """The store of one stack; a Cassandra that does not answer is refused with what to do."""
    if kind == "sqlite":
        return BenchStore(
            url=f"sqlite:///{run_dir / 'switch.db'}?synchronous={synchronous}",
            described=f"SQLite synchronous={synchronous}",
        )
    if kind not in KINDS:
        raise ValueError(f"store must be one of {KINDS}, not {kind!r}")
    hosts, replication = (["127.0.0.1"], 1) if kind == "cassandra" else (cluster_hosts(), 3)
    down = [h for h in hosts if not _answers(h)]
    if down:
        how = "cassctl.py up" if kind == "cassandra" else "CASSANDRA_CLUSTER_BASE=.. cassctl.py"
        raise RuntimeError(
            f"Cassandra does not answer on {', '.join(down)}:{CQL_PORT} (start it: "
            f"scripts/cassandra/{how} cluster-up)"
            if kind != "cassandra"
            else f"Cassandra does not answer on 127.0.0.1:{CQL_PORT} (scripts/cassandra/{how})"
        )
    keyspace = f"bench_{uuid.uuid4().hex[:12]}"
    return BenchStore(
        url=f"cassandra://{','.join(hosts)}:{CQL_PORT}/{keyspace}?replication={replication}",
        described=(
            f"Cassandra, {len(hosts)} node{'s' if len(hosts) > 1 else ''}, replication "
            f"{replication}, QUORUM"
        ),
        hosts=hosts,
        keyspace=keyspace,
    )
