"""One real Cassandra node: `INSERT ... IF NOT EXISTS` (a lightweight transaction) applies once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import cassandra_node
import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    host = cassandra_node.ensure_single_node()
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc="datacenter1")),
        consistency_level=ConsistencyLevel.QUORUM,
        serial_consistency_level=ConsistencyLevel.SERIAL,
        request_timeout=15,
    )
    cluster = Cluster(
        [host], port=cassandra_node.PORT, execution_profiles={EXEC_PROFILE_DEFAULT: profile}
    )
    s = cluster.connect()
    s.execute(
        "CREATE KEYSPACE IF NOT EXISTS payswitch_smoke WITH replication = "
        "{'class': 'NetworkTopologyStrategy', 'datacenter1': 1}",
        timeout=60,
    )
    s.execute(
        "CREATE TABLE IF NOT EXISTS payswitch_smoke.claims (key uuid PRIMARY KEY, owner text)",
        timeout=60,
    )
    try:
        yield s
    finally:
        cluster.shutdown()


def test_if_not_exists_applies_once(session: Session) -> None:
    insert = session.prepare(
        "INSERT INTO payswitch_smoke.claims (key, owner) VALUES (?, ?) IF NOT EXISTS"
    )
    key = uuid.uuid4()

    first = session.execute(insert, (key, "first"))
    assert first.was_applied

    second = session.execute(insert, (key, "second"))
    assert not second.was_applied
    assert second.one().owner == "first"  # the refusal carries the row that won

    row = session.execute(
        "SELECT owner FROM payswitch_smoke.claims WHERE key = %s",
        (key,),
        execution_profile=session.execution_profile_clone_update(
            EXEC_PROFILE_DEFAULT, consistency_level=ConsistencyLevel.SERIAL
        ),
    ).one()
    assert row.owner == "first"


def test_ensure_single_node_is_idempotent(session: Session) -> None:
    host = cassandra_node.ensure_single_node()  # reuses the running node: no second JVM
    assert host == "127.0.0.1"
    assert session.execute("SELECT release_version FROM system.local").one()[0].startswith("5.0")
