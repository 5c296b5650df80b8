"""Three real Cassandra nodes, replication factor 3: one node down, QUORUM still works.

Slow: a fresh cluster takes ~40-60 s to start on two cores and each restart ~10-15 s. Nodes the
test started are stopped at the end; a cluster that was already running is left running. The
single node (same address as cluster node 1 unless CASSANDRA_CLUSTER_BASE moves the cluster)
is stopped for the test and restarted after it if it was running before.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import cassandra_node
import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

QUORUM = ConsistencyLevel.QUORUM
ALL = ConsistencyLevel.ALL


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    cassctl = cassandra_node.cassctl
    already = all(cassctl.running_pid(n) is not None for n in cassctl.cluster_nodes())
    single = cassctl.single_node()
    single_stops = (
        cassctl.running_pid(single) is not None
        and cassandra_node.cluster_address(1) == single.address
    )
    hosts = cassandra_node.start_cluster()  # stops the single node if both need 127.0.0.1
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc="datacenter1")),
        consistency_level=QUORUM,
        serial_consistency_level=ConsistencyLevel.SERIAL,
        request_timeout=15,
    )
    cluster = Cluster(
        hosts, port=cassandra_node.PORT, execution_profiles={EXEC_PROFILE_DEFAULT: profile}
    )
    try:
        s = cluster.connect()
        s.execute(
            "CREATE KEYSPACE IF NOT EXISTS payswitch_rf3 WITH replication = "
            "{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}",
            timeout=60,
        )
        s.execute(
            "CREATE TABLE IF NOT EXISTS payswitch_rf3.approvals (id uuid PRIMARY KEY, n int)",
            timeout=60,
        )
        assert cluster.control_connection.wait_for_schema_agreement(wait_time=60)
        yield s
    finally:
        cluster.shutdown()
        if not already:
            cassandra_node.stop_cluster()
        if single_stops:  # leave things as found for tests that use the single node
            cassandra_node.ensure_single_node()


def wait_driver_sees_up(session: Session, address: str, timeout: float = 60) -> None:
    """Poll (bounded) until the driver has reconnected to the node at address."""
    deadline = time.monotonic() + timeout
    while True:
        host = next(h for h in session.cluster.metadata.all_hosts() if h.address == address)
        if host.is_up:
            return
        assert time.monotonic() < deadline, f"the driver never saw {address} up again"
        time.sleep(0.1)


def write(session: Session, ids: list[uuid.UUID], cl: int = QUORUM) -> None:
    insert = session.prepare("INSERT INTO payswitch_rf3.approvals (id, n) VALUES (?, ?)")
    insert.consistency_level = cl
    insert.is_idempotent = True  # a plain upsert: safe for the driver to retry elsewhere
    for n, i in enumerate(ids):
        session.execute(insert, (i, n))


def read_all(session: Session, ids: list[uuid.UUID], cl: int) -> list[uuid.UUID]:
    select = session.prepare("SELECT id FROM payswitch_rf3.approvals WHERE id = ?")
    select.consistency_level = cl
    return [i for i in ids if session.execute(select, (i,)).one() is not None]


def lwt_claims_once(session: Session) -> None:
    claim = session.prepare(
        "INSERT INTO payswitch_rf3.approvals (id, n) VALUES (?, ?) IF NOT EXISTS"
    )
    key = uuid.uuid4()
    assert session.execute(claim, (key, 1)).was_applied
    again = session.execute(claim, (key, 2))
    assert not again.was_applied
    assert again.one().n == 1


def test_quorum_survives_a_killed_node(session: Session) -> None:
    before = [uuid.uuid4() for _ in range(20)]
    write(session, before, ALL)  # every replica has these

    cassandra_node.kill_node(3, hard=True)  # SIGKILL, returns once the JVM is gone
    # No waiting for anyone to notice: the driver learns of the kill only from gossip (~18 s
    # here), the coordinators' failure detectors after ~10 s. Until then each QUORUM read
    # waits ~0.2 s for its speculative retry; writes and LWTs go through at once.

    during = [uuid.uuid4() for _ in range(20)]
    write(session, during)  # QUORUM: 2 of 3 replicas suffice
    lwt_claims_once(session)  # Paxos at SERIAL also needs only 2 of 3
    assert read_all(session, before + during, QUORUM) == before + during

    cassandra_node.start_node(3)
    wait_driver_sees_up(session, cassandra_node.cluster_address(3))
    assert read_all(session, before + during, ALL) == before + during


def test_graceful_stop_and_restart(session: Session) -> None:
    cassandra_node.kill_node(2, hard=False)  # SIGTERM: drains, announces shutdown
    ids = [uuid.uuid4() for _ in range(20)]
    write(session, ids)
    lwt_claims_once(session)

    cassandra_node.start_node(2)
    wait_driver_sees_up(session, cassandra_node.cluster_address(2))
    assert read_all(session, ids, ALL) == ids
