"""Three Cassandra nodes, replication factor 3, QUORUM / SERIAL, started once for this module.

First the driver alone: one node killed (SIGKILL), QUORUM writes, reads and a Paxos claim still
go through, and every replica has every row once the node is back; one node stopped gracefully
(SIGTERM) and restarted, the same. Then the switch: one node is killed in the middle of a stream
of authorizations through it.

Afterwards every answered approval is in the store (GetTransaction) and at the issuer (its
hold), no approval is there twice, and once failed requests have been retried with their
idempotency keys and reversals have run, the issuer holds exactly the approved amounts.

The cluster shares 127.0.0.1 with the single dev node unless CASSANDRA_CLUSTER_BASE moves it
(e.g. 11: 127.0.0.11-13), so by default it displaces the single node for the module's length;
every test of the cluster is in this one module so that happens once per run (a fresh cluster
takes ~40-60 s to start on two cores, each node restart ~10-15 s).
Nodes the test started are stopped at the end; a single dev node that the cluster displaced is
started again.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

from payswitch.v1 import terminal_pb2

from .clients import Books, RawTerminal, code, node_channels
from .conftest import injected, start_stack

_SUPPORT = str(Path(__file__).resolve().parents[1] / "support")
if _SUPPORT not in sys.path:
    sys.path.insert(0, _SUPPORT)

import cassandra_node  # noqa: E402

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),
]

STREAM = 90  # authorizations
WORKERS = 3  # concurrent terminals' worth of traffic
KILL_AFTER = 30  # answers before node KILLED is killed
KILLED = 2
TAIL = 15  # the last requests must all be approved: QUORUM holds with one node down
AMOUNT = 101


@pytest.fixture(scope="module")
async def cluster():
    cassctl = cassandra_node.cassctl
    single_was_up = cassctl.running_pid(cassctl.single_node()) is not None
    cluster_was_up = all(cassctl.running_pid(n) is not None for n in cassctl.cluster_nodes())
    hosts = await asyncio.to_thread(cassandra_node.start_cluster)
    try:
        yield hosts
    finally:
        if not cluster_was_up:
            await asyncio.to_thread(cassandra_node.stop_cluster)
        if single_was_up and cassctl.running_pid(cassctl.single_node()) is None:
            await asyncio.to_thread(cassandra_node.ensure_single_node)


# --- The driver alone: QUORUM and SERIAL with one node down ------------------------------

QUORUM = ConsistencyLevel.QUORUM
ALL = ConsistencyLevel.ALL


@pytest.fixture(scope="module")
def session(cluster) -> Iterator[Session]:
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc="datacenter1")),
        consistency_level=QUORUM,
        serial_consistency_level=ConsistencyLevel.SERIAL,
        request_timeout=15,
    )
    driver = Cluster(
        cluster, port=cassandra_node.PORT, execution_profiles={EXEC_PROFILE_DEFAULT: profile}
    )
    try:
        s = driver.connect()
        s.execute(
            "CREATE KEYSPACE IF NOT EXISTS payswitch_rf3 WITH replication = "
            "{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}",
            timeout=60,
        )
        s.execute(
            "CREATE TABLE IF NOT EXISTS payswitch_rf3.approvals (id uuid PRIMARY KEY, n int)",
            timeout=60,
        )
        assert driver.control_connection.wait_for_schema_agreement(wait_time=60)
        yield s
    finally:
        driver.shutdown()


def wait_driver_sees_up(session: Session, address: str, timeout: float = 60) -> None:
    """Poll (bounded) until the driver has reconnected to the node at address."""
    deadline = time.monotonic() + timeout
    while True:
        host = next(h for h in session.cluster.metadata.all_hosts() if h.address == address)
        if host.is_up:
            return
        assert time.monotonic() < deadline, f"the driver never saw {address} up again"
        time.sleep(0.1)  # polling the driver's view of the node, bounded above


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


# --- The switch on the cluster: a node killed mid-stream ---------------------------------


@pytest.fixture(scope="module")
async def rf3_stack(cluster, tmp_path_factory, hsm_token):
    keyspace = f"e2e_rf3_{uuid.uuid4().hex[:12]}"
    url = f"cassandra://{','.join(cluster)}:{cassandra_node.PORT}/{keyspace}?replication=3"
    stack = await asyncio.to_thread(
        start_stack, tmp_path_factory.mktemp("rf3"), store=url, ready_timeout=90.0
    )
    channels = node_channels(stack)
    try:
        yield stack, channels
    finally:
        for ch in channels.values():
            await ch.close()
        await asyncio.to_thread(stack.stop)


READ_PATIENCE_S = 45.0  # the driver notices a killed node through gossip after ~20 s


async def _read(call, *args):
    """A read-only check call, retried with backoff on a transient gRPC failure for at most
    READ_PATIENCE_S: what is checked is that the data is there, not how fast a loaded
    two-core box serves it while the driver has not yet marked the killed node down."""
    give_up = time.monotonic() + READ_PATIENCE_S
    delay = 0.25
    while True:
        try:
            return await call(*args)
        except grpc.aio.AioRpcError as exc:
            transient = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
            if exc.code() not in transient or time.monotonic() + delay > give_up:
                raise
        await asyncio.sleep(delay)  # backoff between retries of a check, not synchronisation
        delay = min(delay * 2, 4.0)


async def _stream(pos: RawTerminal, kill) -> list[tuple[terminal_pb2.AuthorizeRequest, object]]:
    """STREAM authorizations from WORKERS concurrent loops; calls ``kill`` once KILL_AFTER
    have been answered. Each result is an AuthorizeResponse or the RpcError it ended in."""
    queue = list(range(STREAM))
    results: list[tuple[int, terminal_pb2.AuthorizeRequest, object]] = []
    killed = asyncio.Event()

    async def worker() -> None:
        while queue:
            n = queue.pop(0)
            req = pos.auth_request("4111111111111111", AMOUNT)
            try:
                outcome: object = await pos.authorize(req, timeout=5.0)
            except grpc.aio.AioRpcError as exc:
                outcome = exc
            results.append((n, req, outcome))
            if len(results) >= KILL_AFTER and not killed.is_set():
                killed.set()
                await asyncio.to_thread(kill)

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    assert killed.is_set()
    return [(req, outcome) for _, req, outcome in sorted(results, key=lambda r: r[0])]


async def test_node_killed_mid_stream_loses_and_duplicates_nothing(rf3_stack) -> None:
    started = time.monotonic()
    stack, channels = rf3_stack
    pos = RawTerminal(channels[stack.topology.switch.id], await injected())
    books = Books({i.id: channels[i.id] for i in stack.topology.issuers})
    before = await _read(books.account, "bank-a", "A-1001")

    results = await _stream(pos, lambda: cassandra_node.kill_node(KILLED, hard=True))
    assert not cassandra_node.cassctl.running_pid(cassandra_node.cassctl.cluster_nodes()[1])

    # The tail ran with one node dead: QUORUM of three still answers every request.
    tail = [o for _, o in results[-TAIL:]]
    assert all(isinstance(o, terminal_pb2.AuthorizeResponse) and code(o) == "00" for o in tail)

    # Whatever failed around the kill is retried with its own key, as a terminal would.
    first_try = sum(
        isinstance(o, terminal_pb2.AuthorizeResponse) and code(o) == "00" for _, o in results
    )
    final: list[terminal_pb2.AuthorizeResponse] = []
    for req, outcome in results:
        for _attempt in range(5):
            if isinstance(outcome, terminal_pb2.AuthorizeResponse) and code(outcome) != "96":
                break
            try:
                outcome = await pos.authorize(req, timeout=5.0)
            except grpc.aio.AioRpcError as exc:
                outcome = exc
        assert isinstance(outcome, terminal_pb2.AuthorizeResponse), outcome
        final.append(outcome)
    approved = [a for a in final if code(a) == "00"]
    assert len(approved) >= STREAM - 5  # a few may be declined 91 around the kill
    assert len({a.transaction_id for a in approved}) == len(approved)
    assert len({a.rrn for a in approved}) == len(approved)

    for a in approved:  # in the store, and held once at the issuer
        tx = await _read(pos.get, a.transaction_id)
        assert tx.state == terminal_pb2.TRANSACTION_STATE_APPROVED
        hold = await _read(books.hold, "bank-a", a.rrn)
        assert hold.amount == AMOUNT

    # Reversals of anything that went out without an approval come through (bounded wait).
    want = len(approved) * AMOUNT
    deadline = time.monotonic() + 60
    while True:
        after = await _read(books.account, "bank-a", "A-1001")
        if after.held - before.held == want or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)  # polling the issuer's books for reversals
    assert after.held - before.held == want
    print(
        f"\ncluster kill test: {first_try}/{STREAM} approved at the first try, {len(approved)} "
        f"after retries; stream and checks {time.monotonic() - started:.1f} s"
    )
