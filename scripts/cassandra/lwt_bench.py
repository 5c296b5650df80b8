"""Raw LWT rate of a running Cassandra node: N sequential `INSERT ... IF NOT EXISTS`.

Run with the project's virtualenv (needs cassandra-driver):
    .venv/bin/python scripts/cassandra/lwt_bench.py [--host 127.0.0.1] [--count 200] [--rf 1]
Prints one line: count, total seconds, LWTs per second and latency percentiles in ms.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--rf", type=int, default=1)
    a = p.parse_args()
    cl = ConsistencyLevel.ONE if a.rf == 1 else ConsistencyLevel.QUORUM
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc="datacenter1")),
        consistency_level=cl,
        serial_consistency_level=ConsistencyLevel.SERIAL,
        request_timeout=10,
    )
    cluster = Cluster([a.host], execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    session = cluster.connect()
    ks = f"lwt_bench_rf{a.rf}"
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', 'datacenter1': {a.rf}}}",
        timeout=60,
    )
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {ks}.keys (k uuid PRIMARY KEY, v text)", timeout=60
    )
    # ks is built from an int above, never from outside input
    insert = session.prepare(f"INSERT INTO {ks}.keys (k, v) VALUES (?, ?) IF NOT EXISTS")  # noqa: S608
    session.execute(insert, (uuid.uuid4(), "warm-up"))
    lat = []
    started = time.perf_counter()
    for _ in range(a.count):
        t0 = time.perf_counter()
        assert session.execute(insert, (uuid.uuid4(), "x")).was_applied
        lat.append((time.perf_counter() - t0) * 1000)
    total = time.perf_counter() - started
    q = statistics.quantiles(lat, n=100)
    print(
        f"{a.count} sequential LWTs (RF {a.rf}, {ConsistencyLevel.value_to_name[cl]}) in "
        f"{total:.2f} s = {a.count / total:.0f}/s; p50 {q[49]:.2f} ms, p99 {q[98]:.2f} ms, "
        f"max {max(lat):.2f} ms"
    )
    cluster.shutdown()


if __name__ == "__main__":
    main()
