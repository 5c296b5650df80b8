"""Cassandra backend specifics: URLs, consistency refusal, schema races, CAS writes of unknown
outcome (injected), recovery-index hygiene, orphaned transmission claims, TTLs.

The contract suite (test_store_*.py) covers the behaviour both backends share.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import cassandra_kit
import pytest
from cassandra import OperationTimedOut
from cassandra.cluster import EXEC_PROFILE_DEFAULT
from storekit import NOW, new_tx

from switch.domain.errors import StoreError, StoreUnavailable
from switch.domain.idempotency import IdemStatus
from switch.domain.transactions import CasFailed, Changes, DuplicateTransmission, TxState
from switch.store import open_store
from switch.store.cassandra import exec as cx
from switch.store.cassandra.config import parse_url
from switch.store.cassandra.index import bucket_of
from switch.store.cassandra.schema import LATEST_VERSION
from switch.store.cassandra.store import CasOutcomeUnknown, CassandraStore


@pytest.fixture
def url(tmp_path: Path) -> str:
    return cassandra_kit.contract_url(tmp_path)


@pytest.fixture
async def store(url: str) -> AsyncIterator[CassandraStore]:
    async with open_store(url) as s:
        assert isinstance(s, CassandraStore)
        yield s


def _query_text(query: object) -> str:
    return getattr(query, "query_string", str(query))


def inject_unknown(monkeypatch, match: str, *, applied: bool, times: int = 1, serial_down=False):
    """The next ``times`` LWTs whose CQL contains ``match`` end in OperationTimedOut, after
    really running (applied=True) or without being sent. ``serial_down``: every SERIAL read
    times out as well (the outcome cannot be settled)."""
    real = cx.execute
    left = [times]
    seen: list[str] = []

    async def fake(session, query, params, profile):
        text = _query_text(query)
        if profile == cx.SERIAL and serial_down:
            raise OperationTimedOut("injected: SERIAL read")
        if profile == cx.LWT and match in text and left[0] > 0:
            left[0] -= 1
            seen.append(text)
            if applied:
                await real(session, query, params, profile)
            raise OperationTimedOut("injected: outcome unknown")
        return await real(session, query, params, profile)

    monkeypatch.setattr(cx, "execute", fake)
    return seen


# --- URLs ---------------------------------------------------------------------------------
def test_url_defaults_and_options() -> None:
    c = parse_url("cassandra://10.0.0.1,10.0.0.2:9142/PaySwitch")
    assert (c.hosts, c.port, c.keyspace) == (("10.0.0.1", "10.0.0.2"), 9142, "payswitch")
    assert (c.replication, c.consistency, c.serial, c.dc) == (3, "QUORUM", "SERIAL", "datacenter1")
    dev = parse_url("cassandra://127.0.0.1/dev?replication=1&consistency=one&serial=LOCAL_SERIAL")
    assert (dev.port, dev.replication, dev.consistency, dev.serial) == (
        9042,
        1,
        "ONE",
        "LOCAL_SERIAL",
    )
    t = parse_url("cassandra://h/k?timeout=0.5&connect_timeout=2&dc=eu-west_1")
    assert (t.timeout_s, t.connect_timeout_s, t.dc) == (0.5, 2.0, "eu-west_1")
    assert isinstance(open_store("cassandra://127.0.0.1/payswitch"), CassandraStore)


@pytest.mark.parametrize(
    "bad",
    [
        "cassandra://127.0.0.1",
        "cassandra://127.0.0.1/",
        "cassandra:///payswitch",
        "cassandra://127.0.0.1/pay-switch",
        "cassandra://127.0.0.1/1payswitch",
        "cassandra://h1:9042,h2:9043/ks",
        "cassandra://h1:port/ks",
        "cassandra://h/ks?replication=0",
        "cassandra://h/ks?consistency=ANY",
        "cassandra://h/ks?serial=QUORUM",
        "cassandra://h/ks?timeout=-1",
        "cassandra://h/ks?dc=x'}",
        "cassandra://h/ks?compression=lz4",
    ],
)
def test_bad_urls_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        open_store(bad)


# --- opening ------------------------------------------------------------------------------
async def test_unreachable_cluster_fails_closed() -> None:
    s = open_store("cassandra://127.0.0.1:1/payswitch?connect_timeout=1")
    with pytest.raises(StoreUnavailable):
        await s.open()
    with pytest.raises(StoreUnavailable):
        await s.get_transaction("tx-any")


async def test_consistency_one_on_three_replicas_is_refused(url: str) -> None:
    session, _ = cassandra_kit.inspect()
    keyspace = f"weak_{uuid.uuid4().hex[:12]}"
    host = cassandra_kit.host()
    try:
        weak = open_store(f"cassandra://{host}/{keyspace}?replication=3&consistency=ONE")
        with pytest.raises(StoreError, match="consistency ONE reads 1 of 3"):
            await weak.open()
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)


async def test_two_processes_create_the_schema_at_once(url: str) -> None:
    """Both open a keyspace that does not exist yet: one migrates under the LWT lock, the
    other waits for the version; both end up on the same tables."""
    session, _ = cassandra_kit.inspect()
    keyspace = f"race_{uuid.uuid4().hex[:12]}"
    fresh = f"cassandra://{cassandra_kit.host()}/{keyspace}?replication=1"
    stores = [open_store(fresh), open_store(fresh)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        tx = new_tx()
        await stores[0].insert_transaction(tx)
        assert await stores[1].get_transaction(tx.id) == tx
        row = session.execute(
            f"SELECT version, owner FROM {keyspace}.schema_meta WHERE name = 'version'"  # noqa: S608
        ).one()
        assert row.version == LATEST_VERSION
        lock = session.execute(
            f"SELECT owner FROM {keyspace}.schema_meta WHERE name = 'lock'"  # noqa: S608
        )
        assert lock.one() is None  # released
    finally:
        for s in stores:
            await s.close()
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)


# --- CAS writes of unknown outcome ----------------------------------------------------------
@pytest.mark.parametrize("applied", [True, False])
async def test_claim_of_unknown_outcome_is_settled(store, monkeypatch, applied: bool) -> None:
    seen = inject_unknown(monkeypatch, "INSERT INTO idempotency", applied=applied)
    claim = await store.claim_idempotency("T1", "k1", "authorize", "fp", 3600.0, NOW)
    assert seen and claim.claimed and claim.record.fingerprint == "fp"
    again = await store.claim_idempotency("T1", "k1", "authorize", "fp", 3600.0, NOW)
    assert not again.claimed


@pytest.mark.parametrize("applied", [True, False])
async def test_insert_of_unknown_outcome_is_settled(store, monkeypatch, applied: bool) -> None:
    tx = new_tx()
    seen = inject_unknown(monkeypatch, "INSERT INTO transactions ", applied=applied)
    await store.insert_transaction(tx)
    assert seen and await store.get_transaction(tx.id) == tx
    with pytest.raises(DuplicateTransmission):
        await store.insert_transaction(new_tx(stan=tx.stan))


@pytest.mark.parametrize("applied", [True, False])
async def test_transition_of_unknown_outcome_is_settled(store, monkeypatch, applied) -> None:
    tx = new_tx()
    await store.insert_transaction(tx)
    seen = inject_unknown(monkeypatch, "UPDATE transactions", applied=applied)
    moved = await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING, Changes(auth_code="X"))
    assert seen and (moved.state, moved.version, moved.auth_code) == (TxState.PENDING, 2, "X")
    assert await store.get_transaction(tx.id) == moved  # applied exactly once
    with pytest.raises(CasFailed):
        await store.transition(tx.id, TxState.RECEIVED, TxState.DECLINED)


async def test_transition_lost_while_unknown_is_a_cas_failure(store, url, monkeypatch) -> None:
    """Our LWT times out unsent; meanwhile another process moved the row: CasFailed."""
    tx = new_tx(state=TxState.PENDING)
    await store.insert_transaction(tx)
    async with open_store(url) as other:
        approved = await other.transition(tx.id, TxState.PENDING, TxState.APPROVED)
        inject_unknown(monkeypatch, "UPDATE transactions", applied=False)
        with pytest.raises(CasFailed) as info:  # store still has version 1 cached
            await store.transition(tx.id, TxState.PENDING, TxState.DECLINED)
        assert info.value.current == approved


@pytest.mark.parametrize("applied", [True, False])
async def test_completion_of_unknown_outcome_is_settled(store, monkeypatch, applied) -> None:
    await store.claim_idempotency("T1", "k1", "authorize", "fp", 3600.0, NOW)
    seen = inject_unknown(monkeypatch, "SET status", applied=applied)
    await store.complete_idempotency("T1", "k1", b"answer", "tx-1")
    record = await store.get_idempotency("T1", "k1", NOW)
    assert seen and record.status is IdemStatus.COMPLETED and record.response == b"answer"


@pytest.mark.parametrize("applied", [True, False])
async def test_sequence_of_unknown_outcome_never_repeats(store, monkeypatch, applied) -> None:
    assert await store.next_sequence("rrn") == 1
    seen = inject_unknown(monkeypatch, "UPDATE sequences", applied=applied)
    second = await store.next_sequence("rrn")
    assert seen and second == 2  # settled by the writer id: no gap either way
    assert await store.next_sequence("rrn") == 3


async def test_vault_put_is_a_plain_write_stamped_by_key_version(store) -> None:
    """No Paxos for the vault (issue 19): one plain read and one plain write for a new card,
    nothing for a version already seen; an older version written later never wins."""
    kinds: list[str] = []
    real = cx.execute

    def counting(session, query, params, profile):  # type: ignore[no-untyped-def]
        kinds.append(cx._kind(query, profile))
        return real(session, query, params, profile)

    cx.execute = counting
    try:
        assert await store.put_vault_entry("ab" * 32, b"blob", 2, NOW)
        assert not await store.put_vault_entry("ab" * 32, b"blob", 2, NOW)
    finally:
        cx.execute = real
    assert kinds == ["read", "write"]
    session, keyspace = cassandra_kit.inspect()
    session.execute(  # a late writer of the older version, as a process that read before
        f"INSERT INTO {keyspace}.vault (token_digest, blob, key_version) "  # noqa: S608
        "VALUES (%s, %s, %s) USING TIMESTAMP %s",
        ("ab" * 32, b"old", 1, 1 * 2**52),
    )
    got = await store.get_vault_entry("ab" * 32)
    assert (got.blob, got.key_version) == (b"blob", 2)


async def test_unsettled_outcome_fails_closed(store, monkeypatch) -> None:
    """Unknown, and SERIAL reads time out too: CasOutcomeUnknown (a StoreUnavailable) after a
    bounded number of reads, never a guess."""
    tx = new_tx()
    await store.insert_transaction(tx)
    inject_unknown(monkeypatch, "UPDATE transactions", applied=True, serial_down=True)
    started = time.monotonic()
    with pytest.raises(CasOutcomeUnknown):
        await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING)
    assert issubclass(CasOutcomeUnknown, StoreUnavailable)
    assert time.monotonic() - started < 5


# --- indexes, transmissions, TTL --------------------------------------------------------------
async def test_failed_transition_leaves_a_stale_entry_that_readers_skip_and_remove(
    store, url
) -> None:
    session, keyspace = cassandra_kit.inspect()
    tx = new_tx(state=TxState.PENDING, deadline_at=NOW - 30)
    await store.insert_transaction(tx)
    async with open_store(url) as other:
        await other.get_transaction(tx.id)  # other caches version 1 (PENDING)
        await store.transition(tx.id, TxState.PENDING, TxState.APPROVED)
        with pytest.raises(CasFailed):  # other pre-writes an UNKNOWN entry, then loses
            await other.transition(tx.id, TxState.PENDING, TxState.UNKNOWN)
    entries = (
        f"SELECT id FROM {keyspace}.transactions_by_state "  # noqa: S608
        "WHERE state = %s AND bucket = %s"
    )
    where = ("UNKNOWN", bucket_of(tx.deadline_at))
    assert [r.id for r in session.execute(entries, where)] == [tx.id]
    assert await store.transactions_in_state(TxState.UNKNOWN, older_than=NOW) == []
    await asyncio.wait(list(store._cql.tasks), timeout=10)  # the clean-up runs in background
    assert list(session.execute(entries, where)) == []  # UNKNOWN unreachable now
    approved = await store.transactions_in_state(TxState.APPROVED, older_than=NOW)
    assert [t.id for t in approved] == [tx.id]


async def test_orphaned_transmission_claim_is_taken_over(store) -> None:
    """A (terminal, date, STAN) claim whose transaction never appeared: refused while young
    (an insert may be in flight), taken over once older than any insert can take."""
    session, keyspace = cassandra_kit.inspect()
    put = (
        f"INSERT INTO {keyspace}.terminal_guards "  # noqa: S608
        "(terminal_id, name, transaction_id, writer, created_at) "
        "VALUES (%s, %s, %s, %s, %s) IF NOT EXISTS"
    )
    young, old = new_tx(), new_tx()
    for tx, at in ((young, time.time()), (old, time.time() - 3600)):
        name = f"t:{tx.local_date}:{tx.stan}"
        session.execute(put, (tx.terminal_id, name, "tx-gone", uuid.uuid4(), at))
    with pytest.raises(DuplicateTransmission):
        await store.insert_transaction(young)
    await store.insert_transaction(old)
    assert await store.get_transaction(old.id) == old
    with pytest.raises(DuplicateTransmission) as info:
        await store.insert_transaction(new_tx(stan=old.stan))
    assert info.value.existing_id == old.id


async def test_idempotency_rows_expire_in_cassandra_after_their_expiry(store) -> None:
    session, keyspace = cassandra_kit.inspect()
    now = time.time()
    await store.claim_idempotency("T1", "k1", "authorize", "fp", 600.0, now)
    await store.complete_idempotency("T1", "k1", b"answer", "tx-1")
    row = session.execute(
        f"SELECT TTL(operation) AS a, TTL(response) AS b FROM {keyspace}.idempotency "  # noqa: S608
        "WHERE scope = 'T1' AND key = 'k1'"
    ).one()
    for ttl in (row.a, row.b):  # remaining life + grace on every cell, completed ones too
        assert 600 <= ttl <= 600 + 300 + 5


async def test_a_device_hint_made_stale_by_another_process_never_decides(url: str) -> None:
    """Each process keeps the device row it last wrote and skips the read on the next
    use; another process's advance makes that hint stale: an advance still lands (its LWT
    fails, the row is read, decided again), and a replay the hint would take for the same
    transmission is refused as the row says."""
    from switch.domain.devices import Advance, CounterReplay, DeviceUse

    def use(counter: int, stan: int) -> DeviceUse:
        return DeviceUse("00112233445566aa", "T0001", counter, "2027-01-15", stan)

    statements: list[str] = []
    real = cx.execute

    def counting(session, query, params, profile):  # type: ignore[no-untyped-def]
        statements.append(profile)
        return real(session, query, params, profile)

    async with open_store(url) as a, open_store(url) as b:
        assert await a.advance_device(use(1, 1), NOW) is Advance.ADVANCED
        cx.execute = counting
        try:
            assert await a.advance_device(use(2, 2), NOW) is Advance.ADVANCED
        finally:
            cx.execute = real
        assert statements == [cx.LWT]  # the hint spared the SERIAL read
        assert await b.advance_device(use(5, 5), NOW) is Advance.ADVANCED  # a's hint: stale
        with pytest.raises(CounterReplay):
            await a.advance_device(use(2, 2), NOW)  # the hint says "same"; the row says replay
        assert await a.advance_device(use(6, 6), NOW) is Advance.ADVANCED
        # b's hint (5) is stale: its LWT fails, the row is read, b marks the device shared.
        assert await b.advance_device(use(7, 7), NOW) is Advance.ADVANCED
        assert await b.advance_device(use(8, 8), NOW) is Advance.ADVANCED
        assert (await a.get_device("00112233445566aa")).counter == 8
        statements.clear()
        cx.execute = counting
        try:  # b now knows the device is shared: it reads first, no failed LWT
            assert await b.advance_device(use(9, 9), NOW) is Advance.ADVANCED
        finally:
            cx.execute = real
        assert statements == [EXEC_PROFILE_DEFAULT, cx.LWT]  # a plain read decides an advance


async def test_an_authorization_costs_three_lwts_once_its_device_is_known(store) -> None:
    """Issue 19's count, as the load suite reads it (``switch.store.statements``): the key's
    claim, the intent (device counter and STAN claim in one conditional batch) and the final
    transition with the key's answer; everything else plain. Replays and retransmissions
    are still refused."""
    from switch.domain.devices import CounterReplay, DeviceUse
    from switch.domain.idempotency import Answer
    from switch.store import statements

    def lwts() -> int:
        return statements.snapshot().get(("cassandra", "lwt"), 0)

    async def authorize(counter: int) -> tuple[str, str, int]:
        tx = new_tx()
        device = DeviceUse("0011223344556677", tx.terminal_id, counter, tx.local_date, tx.stan)
        before = lwts()
        await store.claim_idempotency(
            tx.terminal_id, tx.idempotency_key, "authorize", "fp", 60.0, NOW
        )
        pending = await store.receive_with_intent(
            tx,
            vault=None,
            attach=(tx.terminal_id, tx.idempotency_key),
            acquirer_id="ACQ1",
            now=NOW,
            device=device,
        )
        answer = Answer(tx.terminal_id, tx.idempotency_key, b"answer")
        changes = Changes(response_code="00", auth_code="A1")
        done = await store.record_with_answer(
            pending.id, TxState.PENDING, TxState.APPROVED, changes, answer
        )
        assert done.answered and done.tx.state is TxState.APPROVED
        return tx.id, tx.idempotency_key, lwts() - before

    await authorize(1)  # the device's first use binds it (one more LWT, once per device)
    tx_id, key, spent = await authorize(2)
    assert spent == 3
    replay = await store.claim_idempotency("T0001", key, "authorize", "fp", 60.0, NOW + 1)
    assert not replay.claimed
    assert (replay.record.status, replay.record.response) == (IdemStatus.COMPLETED, b"answer")
    assert replay.record.transaction_id == tx_id
    with pytest.raises(CounterReplay):
        await authorize(2)


async def test_a_key_answered_through_its_transaction_keeps_its_first_answer(store) -> None:
    """The final transition keeps the key's answer on the row (``intent.py``): the key reads
    COMPLETED, a later completion (a stalled holder, an abandoned key's settlement) is
    refused, a release drops nothing; a key whose request died after its intent names the
    transaction, as recovery needs."""
    from switch.domain.errors import NotFound
    from switch.domain.idempotency import Answer

    async def intent() -> tuple[str, str]:
        tx = new_tx()
        await store.claim_idempotency("T0001", tx.idempotency_key, "authorize", "fp", 60.0, NOW)
        attach = ("T0001", tx.idempotency_key)
        await store.receive_with_intent(tx, vault=None, attach=attach, acquirer_id="A", now=NOW)
        return tx.id, tx.idempotency_key

    crashed_id, crashed = await intent()
    record = await store.get_idempotency("T0001", crashed, NOW)
    assert (record.status, record.transaction_id) == (IdemStatus.IN_FLIGHT, crashed_id)

    tx_id, key = await intent()
    changes = Changes(response_code="00", auth_code="A1")
    answer = Answer("T0001", key, b"first")
    assert (
        await store.record_with_answer(tx_id, TxState.PENDING, TxState.APPROVED, changes, answer)
    ).answered
    with pytest.raises(NotFound):
        await store.complete_idempotency("T0001", key, b"second", tx_id)
    await store.release_idempotency("T0001", key)
    record = await store.get_idempotency("T0001", key, NOW)
    assert (record.status, record.response, record.transaction_id) == (
        IdemStatus.COMPLETED,
        b"first",
        tx_id,
    )
