"""Cassandra state store: the ``Store`` interface for many switch processes over one cluster.

Parts: URL and consistency options ``config.py`` (QUORUM / SERIAL by default); schema and
migrations ``cql/`` and ``schema.py``; request plumbing and the meaning of driver errors
``exec.py``; the recovery and refund lookups ``index.py``; ``sequences.py``; ``vault.py``.
This module: connecting, idempotency keys and transactions.

Writes. Every row that carries state is written only by lightweight transactions (Paxos):
idempotency claims ``INSERT ... IF NOT EXISTS USING TTL``, transactions ``INSERT ... IF NOT
EXISTS`` then ``UPDATE ... IF <expected> AND version = ?``, duplicate transmissions ``INSERT
... IF NOT EXISTS`` on their own (terminal, local date, STAN) partition. The lookup tables are
written only by plain writes. No row gets both: a plain write's client timestamp could shadow a
later Paxos write.

Compare-and-set. ``version`` is bumped by every CAS, so the row at version v is one exact row:
a CAS sends ``IF <expected columns> AND version = v`` and, once applied, knows the new row
without reading it back. Rows are cached per process only as that hint; a stale hint costs a
failed LWT and a SERIAL read. Calls on one row, key or sequence within a process are
serialised, so Paxos only sees contention between processes.

Unknown outcomes. A WriteTimeout (CAS or commit phase), CAS_WRITE_UNKNOWN, a client
OperationTimedOut or a lost connection leave an LWT maybe-applied. Each conditional write
carries a random writer id (``claim_id``, ``writers[version]``, ``writer``); the store reads the
row at SERIAL, which completes or forever pre-empts the pending Paxos round, and decides: our
id -> applied; otherwise not applied, and the operation goes on as if it had lost the race.
Bounded (RESOLVE_ATTEMPTS reads), then CasOutcomeUnknown, a StoreUnavailable: callers fail
closed. Unavailable, Overloaded, no host: StoreUnavailable, nothing was written.

Duplicate transmissions. (terminal, local date, STAN) is claimed before the transaction row is
inserted (two partitions, no atomic batch across them): a definite failure of the insert
releases the claim; a claim whose transaction never appeared is taken over after ORPHAN_S.

TTL. Idempotency rows get ``expires_at`` (the contract's clock) and a Cassandra TTL of the
remaining time plus TTL_GRACE_S: the TTL only reclaims space, ``expires_at <= now`` decides.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from cassandra import ConsistencyLevel, OperationTimedOut, ProtocolVersion, Timeout
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    Session,
)
from cassandra.policies import DCAwareRoundRobinPolicy, FallthroughRetryPolicy, TokenAwarePolicy
from cassandra.query import dict_factory

from switch.domain.errors import NotFound, StoreError, StoreUnavailable
from switch.domain.idempotency import Claim, IdempotencyRecord, IdemStatus
from switch.domain.standin import check_reserve
from switch.domain.transactions import (
    CasFailed,
    ChangeColumns,
    Changes,
    Expect,
    ExpectColumns,
    Transaction,
    TxState,
    TxType,
    check_cas,
    check_new,
)
from switch.domain.vault import VaultEntry, check_vault_entry
from switch.store.base import Store
from switch.store.cassandra.batches import CassandraBatches
from switch.store.cassandra.config import CassandraConfig, parse_url
from switch.store.cassandra.cql import Statements, db_value, idem_from_row, tx_from_row, tx_values
from switch.store.cassandra.devices import CassandraDevices
from switch.store.cassandra.exec import (
    LWT,
    RESOLVE_ATTEMPTS,
    SERIAL,
    CasOutcomeUnknown,
    Cql,
    Row,
    backoff,
    describe,
)
from switch.store.cassandra.guards import Sent
from switch.store.cassandra.imports import CassandraImports
from switch.store.cassandra.index import StateIndex, bucket_of
from switch.store.cassandra.intent import CassandraIntent
from switch.store.cassandra.ledger import CassandraLedgerMixin
from switch.store.cassandra.offline import CassandraOffline
from switch.store.cassandra.revocations import CassandraRevocations
from switch.store.cassandra.risk import CassandraRisk
from switch.store.cassandra.saf import CassandraSafMixin
from switch.store.cassandra.schema import ensure_schema
from switch.store.cassandra.sequences import Sequences
from switch.store.cassandra.standin import StandInUsage
from switch.store.cassandra.vault import Vault

_SCHEMA_ATTEMPTS = 5

__all__ = ["CasOutcomeUnknown", "CassandraStore"]

TTL_GRACE_S = 300
MAX_TTL_S = 630_720_000  # Cassandra's limit (20 years)
CAS_ATTEMPTS = 16
PAGE_CONCURRENCY = 64  # reads in flight for one page (get_transactions)
SETTLE_CONCURRENCY = 256  # LWTs in flight for one page of settle_presented
IN_KEYS = 50  # ids per IN read of get_transactions (below the driver's fetch size)
CACHE_ROWS = 10_000
CACHE_CLAIMS = 100_000
CLOSE_WAIT_S = 10.0


def _ttl(expires_at: float) -> int:
    remaining = math.ceil(expires_at - time.time())
    return min(max(remaining, 0) + TTL_GRACE_S, MAX_TTL_S)


K = TypeVar("K")
V = TypeVar("V")


class _Lru(OrderedDict[K, V]):
    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap = cap

    def put(self, key: K, value: V) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.cap:
            self.popitem(last=False)


def _profiles(cfg: CassandraConfig) -> dict[object, ExecutionProfile]:
    level = getattr(ConsistencyLevel, cfg.consistency)
    serial = getattr(ConsistencyLevel, cfg.serial)

    def profile(consistency: int, **kw: Any) -> ExecutionProfile:
        return ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=cfg.dc)),
            consistency_level=consistency,
            serial_consistency_level=serial,
            request_timeout=cfg.timeout_s,
            row_factory=dict_factory,
            **kw,
        )

    return {
        EXEC_PROFILE_DEFAULT: profile(level),
        LWT: profile(level, retry_policy=FallthroughRetryPolicy()),  # we decide, not the driver
        SERIAL: profile(serial),
    }


def _replication_factor(cluster: Cluster, cfg: CassandraConfig) -> int | None:
    keyspace = cluster.metadata.keyspaces.get(cfg.keyspace)
    strategy: Any = getattr(keyspace, "replication_strategy", None)  # the driver's metadata
    factors = getattr(strategy, "dc_replication_factors", None)
    if factors:
        if cfg.consistency.startswith("LOCAL_"):
            return int(factors.get(cfg.dc, 0))
        return sum(int(v) for v in factors.values())
    if hasattr(strategy, "replication_factor"):
        return int(strategy.replication_factor)
    return None


class CassandraStore(
    CassandraIntent,
    CassandraDevices,
    CassandraBatches,
    CassandraImports,
    CassandraRevocations,
    CassandraOffline,
    CassandraRisk,
    CassandraLedgerMixin,
    CassandraSafMixin,
    Store,
):
    """``Store`` on cassandra-driver; see the module docstring for the reasoning."""

    def __init__(self, config: CassandraConfig | str) -> None:
        self.config = parse_url(config) if isinstance(config, str) else config
        self._cluster: Cluster | None = None
        self._cql: Cql | None = None
        self._index: StateIndex | None = None
        self._sequences: Sequences | None = None
        self._vault: Vault | None = None
        self._standin: StandInUsage | None = None
        self._owner = uuid.uuid4().hex
        # tx id -> Transaction at some version (a CAS hint)
        self._rows: _Lru[str, Transaction] = _Lru(CACHE_ROWS)
        # (scope, key) -> (claim_id, expires_at) we own
        self._claims: _Lru[tuple[str, str], tuple[uuid.UUID, float]] = _Lru(CACHE_CLAIMS)

    # --- lifecycle ----------------------------------------------------------------------
    async def open(self) -> None:
        if self._cql is not None:
            return
        cluster, cql = await asyncio.to_thread(self._connect)
        self._cluster, self._cql = cluster, cql
        self._index = StateIndex(cql, self._peek, self.get_transactions)
        self._sequences = Sequences(cql)
        self._vault = Vault(cql)

    def _connect(self) -> tuple[Cluster, Cql]:
        cfg = self.config
        cluster = Cluster(
            contact_points=list(cfg.hosts),
            port=cfg.port,
            protocol_version=ProtocolVersion.V5,  # Cassandra 4.0+; no downgrade dance
            execution_profiles=_profiles(cfg),
            connect_timeout=cfg.connect_timeout_s,
            control_connection_timeout=cfg.connect_timeout_s,
        )
        try:
            session = cluster.connect()
            self._ensure_schema(session, cluster)
            session.set_keyspace(cfg.keyspace)
            return cluster, Cql(session, Statements(session))
        except StoreError:
            cluster.shutdown()
            raise
        except Exception as exc:
            cluster.shutdown()
            raise StoreUnavailable(f"Cassandra {','.join(cfg.hosts)}: {describe(exc)}") from exc

    def _ensure_schema(self, session: Session, cluster: Cluster) -> None:
        """Apply the schema; a timeout (a node busy with another process's schema change, or
        a loaded machine) is retried a bounded number of times: the steps are idempotent and
        the migration lock recognises its own owner, so a retry takes up where it stopped.
        So is a node's refusal while a table another switch process just created is still
        being applied there ("Unknown CF" on the first statement against it: seen when two
        switch processes open one new keyspace at once)."""
        for attempt in range(_SCHEMA_ATTEMPTS):
            try:
                ensure_schema(
                    session, self.config, self._owner, lambda: self._check_consistency(cluster)
                )
                return
            except (Timeout, OperationTimedOut, NoHostAvailable):
                if attempt == _SCHEMA_ATTEMPTS - 1:
                    raise
                time.sleep(min(0.5 * 2**attempt, 4.0))  # start-up only, on a worker thread

    def _check_consistency(self, cluster: Cluster) -> None:
        """Refuse levels that cannot read their own writes: R + W must exceed RF."""
        cfg = self.config
        rf = _replication_factor(cluster, cfg)
        if not rf:
            return
        needed = cfg.replicas_needed(rf)
        if 2 * needed <= rf:
            raise StoreError(
                f"consistency {cfg.consistency} reads {needed} of {rf} replicas of "
                f"{cfg.keyspace}: a read could miss an acknowledged write; use QUORUM "
                "(ONE only with replication 1)"
            )

    async def close(self) -> None:
        cluster, cql = self._cluster, self._cql
        if cluster is None or cql is None:
            return
        if cql.tasks:  # writes whose callers went away, index clean-ups
            await asyncio.wait(list(cql.tasks), timeout=CLOSE_WAIT_S)
        self._cluster = self._cql = None
        self._index = self._sequences = self._vault = None
        self._standin = None
        await asyncio.to_thread(cluster.shutdown)

    def _open(self) -> Cql:
        cql = self._cql
        if cql is None:
            raise StoreUnavailable("Cassandra store is not open")
        return cql

    # --- idempotency keys ---------------------------------------------------------------
    async def claim_idempotency(
        self, scope: str, key: str, operation: str, fingerprint: str, ttl_s: float, now: float
    ) -> Claim:
        cql = self._open()
        async with cql.serialised("idem", scope, key):
            return await cql.shielded(self._claim(scope, key, operation, fingerprint, ttl_s, now))

    async def _claim(
        self, scope: str, key: str, operation: str, fingerprint: str, ttl_s: float, now: float
    ) -> Claim:
        cql = self._open()
        q = cql.q
        expires = now + ttl_s
        status = IdemStatus.IN_FLIGHT
        mine = IdempotencyRecord(scope, key, operation, fingerprint, status, now, expires, "", b"")
        for attempt in range(CAS_ATTEMPTS):
            await backoff(attempt)
            claim_id = uuid.uuid4()
            fields = (operation, fingerprint, status.value, now, expires, "", b"", claim_id)
            ok, row = await cql.lwt(q.idem_claim, (scope, key, *fields, _ttl(expires)))
            if ok is None:
                ok, row = await self._settle_claim(scope, key, claim_id)
                if ok is None:
                    continue  # settled as absent: nothing was written, claim again
            if not ok:
                existing = idem_from_row(row)
                if existing.expires_at > now:
                    existing = await self.answered(row)
                    return Claim(False, existing)
                # Expired but still there (TTL grace, or the caller's clock): replace it.
                params = (_ttl(expires), *fields, scope, key, now)
                ok, _ = await cql.lwt(q.idem_replace, params)
                if ok is None:
                    ok, _ = await self._settle_claim(scope, key, claim_id)
            if ok:
                self._claims.put((scope, key), (claim_id, expires))
                return Claim(True, mine)
        raise StoreUnavailable(f"idempotency claim on {scope}: no decision after contention")

    async def _settle_claim(
        self, scope: str, key: str, claim_id: uuid.UUID
    ) -> tuple[bool | None, Row]:
        cql = self._open()
        row = await cql.serial(cql.q.idem_get, (scope, key))
        if row is None:
            return None, {}
        return row["claim_id"] == claim_id, row

    async def attach_transaction(self, scope: str, key: str, transaction_id: str) -> None:
        cql = self._open()

        def done(r: Row) -> bool:
            return bool(r["transaction_id"] == transaction_id)

        async with cql.serialised("idem", scope, key):
            await self._not_answered(scope, key)
            update = self._update_claim(scope, key, cql.q.idem_attach, (transaction_id,), done)
            await cql.shielded(update)

    async def complete_idempotency(
        self, scope: str, key: str, response: bytes, transaction_id: str
    ) -> None:
        cql = self._open()
        values = (IdemStatus.COMPLETED.value, bytes(response), transaction_id)

        def done(r: Row) -> bool:
            return (r["status"], bytes(r["response"] or b""), r["transaction_id"]) == values

        async with cql.serialised("idem", scope, key):
            await self._not_answered(scope, key)
            await cql.shielded(self._update_claim(scope, key, cql.q.idem_complete, values, done))
            self._claims.pop((scope, key), None)

    async def _not_answered(self, scope: str, key: str) -> None:
        """NotFound when the key's transaction carries its answer already (the final
        transition's LWT kept it there, ``intent.py``): the first answer stands."""
        cql = self._open()
        rows = await cql.run(cql.q.idem_get, (scope, key))
        if rows and rows[0]["status"] == IdemStatus.IN_FLIGHT.value:
            record = await self.answered(rows[0])
            if record.status is IdemStatus.COMPLETED:
                self._claims.pop((scope, key), None)
                raise NotFound(f"idempotency key {key!r} of {scope!r} is answered already")

    async def _update_claim(
        self,
        scope: str,
        key: str,
        stmt: Any,
        values: tuple[Any, ...],
        done: Callable[[Row], bool],
    ) -> None:
        """An idempotent LWT ``IF claim_id = ? AND status = IN_FLIGHT`` on the claim we hold
        (or, from another process or after a restart, the claim the row shows): a completed
        key is never written again (NotFound), so its first answer stands."""
        cql = self._open()
        known = self._claims.get((scope, key))
        if known is None:
            row = await cql.serial(cql.q.idem_get, (scope, key))
            if row is None:
                raise NotFound(f"no idempotency record for key {key!r} of {scope!r}")
            known = (row["claim_id"], row["expires_at"])
        claim_id, expires = known
        for _attempt in range(RESOLVE_ATTEMPTS):
            in_flight = IdemStatus.IN_FLIGHT.value
            ok, _ = await cql.lwt(stmt, (_ttl(expires), *values, scope, key, claim_id, in_flight))
            if ok:
                return
            if ok is None:  # unknown: look, and repeat the (idempotent) write if needed
                row = await cql.serial(cql.q.idem_get, (scope, key))
                if row is not None and row["claim_id"] == claim_id:
                    if done(row):
                        return
                    continue
            self._claims.pop((scope, key), None)
            raise NotFound(f"no idempotency record for key {key!r} of {scope!r} (claim gone)")
        raise CasOutcomeUnknown(f"idempotency update on {scope}: outcome still unknown")

    async def get_idempotency(self, scope: str, key: str, now: float) -> IdempotencyRecord | None:
        cql = self._open()
        rows = await cql.run(cql.q.idem_get, (scope, key))
        if not rows:
            return None
        record = idem_from_row(rows[0])
        return await self.answered(rows[0]) if record.expires_at > now else None

    async def release_idempotency(self, scope: str, key: str) -> None:
        cql = self._open()
        async with cql.serialised("idem", scope, key):
            self._attached_keys().pop((scope, key), None)  # its answer goes to the key now
            try:
                await self._not_answered(scope, key)
            except NotFound:
                return  # answered through its transaction: never dropped
            await cql.shielded(self._release(scope, key))

    async def _release(self, scope: str, key: str) -> None:
        cql = self._open()
        q = cql.q
        status = IdemStatus.IN_FLIGHT.value
        known = self._claims.pop((scope, key), None)
        for _attempt in range(RESOLVE_ATTEMPTS):
            if known is not None:  # ours: never drop a newer claim by someone else
                ok, _ = await cql.lwt(q.idem_release_own, (scope, key, status, known[0]))
            else:
                ok, _ = await cql.lwt(q.idem_release, (scope, key, status))
            if ok is not None:
                return  # deleted, or nothing in flight to delete
            row = await cql.serial(q.idem_get, (scope, key))
            if row is None or row["status"] != status:
                return
            if known is not None and row["claim_id"] != known[0]:
                return
        raise CasOutcomeUnknown(f"idempotency release on {scope}: outcome still unknown")

    # --- transactions -------------------------------------------------------------------
    async def insert_transaction(self, tx: Transaction) -> None:
        check_new(tx)
        bucket_of(tx.deadline_at)
        cql = self._open()
        async with cql.serialised("tx", tx.id):
            await cql.shielded(self._insert(tx.copy()))

    async def _insert(self, tx: Transaction) -> None:
        self._open()
        index = self._index
        assert index is not None
        sent = Sent(tx.terminal_id, tx.local_date, tx.stan, tx.id, uuid.uuid4())
        # Both at once: until the row exists the index entries are only stale hints.
        results: tuple[Any, ...] = await asyncio.gather(
            self._guard(None, sent, time.time()),
            asyncio.gather(index.put(tx.state, tx.deadline_at, tx.id), index.put_refund(tx)),
            return_exceptions=True,
        )
        claimed, hinted = results
        if isinstance(claimed, BaseException):
            raise claimed  # duplicate (or no decision): nothing of ours to release
        try:
            if isinstance(hinted, BaseException):
                raise hinted
            await self._insert_row(tx, sent.writer)
        except CasOutcomeUnknown:
            raise  # the row may exist: keep its transmission claimed
        except StoreError:
            await self._release_sent(sent)  # best effort; see guards.py (orphans)
            raise
        self._rows.put(tx.id, tx)

    async def _insert_row(self, tx: Transaction, writer: uuid.UUID) -> None:
        cql = self._open()
        q = cql.q
        for _attempt in range(RESOLVE_ATTEMPTS):
            ok, row = await cql.lwt(q.tx_insert, (*tx_values(tx), {tx.version: writer}))
            if ok is None:
                row = await cql.serial(q.tx_get, (tx.id,)) or {}
                if not row:
                    continue  # settled as not applied: insert again
            if ok or (row.get("writers") or {}).get(tx.version) == writer:
                return
            raise StoreError(f"transaction id {tx.id} exists already")
        raise CasOutcomeUnknown(f"insert of {tx.id}: outcome still unknown")

    async def get_transaction(self, tx_id: str) -> Transaction | None:
        return await self._peek(tx_id)

    async def _peek(self, tx_id: str) -> Transaction | None:
        """The row at the store's consistency: sees every acknowledged transition."""
        cql = self._open()
        rows = await cql.run(cql.q.tx_get, (tx_id,))
        if not rows:
            return None
        tx = tx_from_row(rows[0])
        self._remember(tx)
        return tx

    def _remember(self, tx: Transaction) -> None:
        known = self._rows.get(tx.id)
        if known is None or known.version <= tx.version:
            self._rows.put(tx.id, tx.copy())

    async def compare_and_set(self, tx_id: str, expected: Expect, changes: Changes) -> Transaction:
        want, updates = check_cas(expected, changes)
        if "deadline_at" in updates:
            bucket_of(float(updates["deadline_at"]))
        cql = self._open()
        async with cql.serialised("tx", tx_id):
            return await cql.shielded(self._cas(tx_id, want, updates))

    async def _cas(
        self,
        tx_id: str,
        expected: ExpectColumns,
        changes: ChangeColumns,
        indexed: tuple[TxState, float] | None = None,
        drops: list[tuple[TxState, float, str]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Transaction:
        """``indexed``: the (state, deadline) whose index entry the caller already put;
        ``drops``: where to leave the old entry for the caller to drop (a page's at once);
        ``extra``: columns outside ``Transaction`` written by the same LWT (the key's answer,
        ``intent.py``)."""
        cql = self._open()
        index = self._index
        assert index is not None
        conditions = [c for c in expected if c != "version"]
        extra = extra or {}
        names = [*changes, *extra]
        stmt = cql.q.cas_cached(names, conditions)
        if stmt is None:  # preparing blocks: off the event loop
            stmt = await asyncio.to_thread(cql.q.prepare_cas, names, conditions)
        row = self._rows.get(tx_id)
        fresh = False  # row was read at SERIAL during this call
        if row is None:
            row = await self._read_tx(tx_id, serial=False)
        for attempt in range(CAS_ATTEMPTS):
            if any(getattr(row, c) != v for c, v in expected.items()):
                if fresh:
                    raise CasFailed(row.copy())
                row, fresh = await self._read_tx(tx_id, serial=True), True
                continue
            new = row.copy(**changes, version=row.version + 1)
            moved = (new.state, new.deadline_at) != (row.state, row.deadline_at)
            if moved and (new.state, new.deadline_at) != indexed:
                await index.put(new.state, new.deadline_at, tx_id)
            writer = uuid.uuid4()
            params = (
                *(db_value(v) for v in changes.values()),
                *extra.values(),
                new.version,
                new.version,
                writer,
                tx_id,
                *(db_value(v) for c, v in expected.items() if c != "version"),  # = conditions
                row.version,
            )
            ok, _ = await cql.lwt(stmt, params)
            if ok is None:  # settle it: is version v + 1 ours?
                current = await cql.serial(cql.q.tx_get, (tx_id,))
                if current is None:
                    raise NotFound(f"no transaction {tx_id}")
                ok = (current.get("writers") or {}).get(new.version) == writer
                if not ok:
                    row, fresh = tx_from_row(current), True
                    self._remember(row)
            elif not ok:  # someone else moved it first (or our hint was stale): look again
                row, fresh = await self._read_tx(tx_id, serial=True), True
            if ok:
                self._rows.put(tx_id, new)
                if moved and drops is not None:
                    drops.append((row.state, row.deadline_at, tx_id))
                elif moved:
                    index.drop_later(row.state, row.deadline_at, tx_id)
                return new.copy()
            await backoff(attempt)
        raise StoreUnavailable(f"compare-and-set on {tx_id}: no decision after contention")

    async def _read_tx(self, tx_id: str, serial: bool) -> Transaction:
        cql = self._open()
        if serial:
            found = await cql.serial(cql.q.tx_get, (tx_id,))
        else:
            rows = await cql.run(cql.q.tx_get, (tx_id,))
            found = rows[0] if rows else None
        if found is None:
            raise NotFound(f"no transaction {tx_id}")
        tx = tx_from_row(found)
        self._remember(tx)
        return tx

    async def transactions_in_state(
        self,
        state: TxState,
        older_than: float,
        limit: int = 100,
        after: tuple[float, str] | None = None,
    ) -> list[Transaction]:
        self._open()
        assert self._index is not None
        return await self._index.in_state(TxState(state), older_than, limit, after)

    async def get_transactions(self, tx_ids: Sequence[str]) -> list[Transaction]:
        """Multi-partition ``IN`` reads of IN_KEYS ids each (one request instead of one per
        id: the driver's per-request cost, not the node, bounded the clear step), a few in
        flight; rows come back in no particular order."""
        ids = list(dict.fromkeys(tx_ids))
        cql = self._open()
        gate = asyncio.Semaphore(PAGE_CONCURRENCY)

        async def chunk(part: list[str]) -> list[Row]:
            async with gate:
                return await cql.run(cql.q.tx_get_many, (part,))

        parts = [ids[i : i + IN_KEYS] for i in range(0, len(ids), IN_KEYS)]
        found: dict[str, Transaction] = {}
        for rows in await asyncio.gather(*(chunk(p) for p in parts)):
            for row in rows:
                tx = tx_from_row(row)
                self._remember(tx)
                found[tx.id] = tx
        return [found[i] for i in ids if i in found]

    async def settle_presented(
        self, captures: Sequence[str], refunds: Sequence[str], now: float
    ) -> list[Transaction]:
        """The page's rows by IN reads and their SETTLED index entries in unlogged batches
        first, then one CAS (LWT) per transaction still to settle, SETTLE_CONCURRENCY in
        flight. An entry put for a row that then fails its CAS is only stale (the index's
        readers check the row).

        Why a CAS and not a plain write (issue 17 asked): the row of a presented sale is
        CAPTURED, whose only transition is SETTLED (ours), but its row is not quiet. A refund
        of it may be reserving at that moment (``refund_reservations.reserve``: a CAS of
        ``refunded_minor`` on a CAPTURED or SETTLED original), and recovery may release a dead
        refund's reservation the same way; a presented refund is APPROVED and may still be
        voided (APPROVED -> VOIDED | REVERSAL_PENDING), a real race on ``state`` the CAS
        decides. A plain write would take ``version`` v + 1 next to a reservation's LWT that
        took it too (two changes, one version; a Paxos ballot timestamp against a client
        timestamp decides ``writers[v + 1]``), so a reservation of unknown outcome could read
        another writer at v + 1, think it lost, and reserve again; a read-back sees that too
        late. The schema's rule stays (a transactions row is only written by LWTs). What is
        cut instead: a row already SETTLED (a rerun after a crash: SETTLED is terminal) is
        returned as read, with no CAS and no SERIAL read; the rest run with more in flight
        than a read page (an LWT waits on the node's Paxos rounds, not on this process)."""
        gate = asyncio.Semaphore(SETTLE_CONCURRENCY)
        done = Changes(state=TxState.SETTLED, updated_at=now)
        wanted = [(i, Expect(state=TxState.CAPTURED)) for i in dict.fromkeys(captures)]
        wanted += [
            (i, Expect(state=TxState.APPROVED, type=TxType.REFUND)) for i in dict.fromkeys(refunds)
        ]
        rows = {tx.id: tx for tx in await self.get_transactions([i for i, _ in wanted])}
        entries = [
            (TxState.SETTLED, rows[i].deadline_at, i)
            for i, expect in wanted
            if i in rows and all(getattr(rows[i], c) == v for c, v in expect.columns().items())
        ]
        assert self._index is not None
        await self._index.put_many(entries)
        indexed = {tx_id: deadline for _, deadline, tx_id in entries}
        drops: list[tuple[TxState, float, str]] = []

        async def one(tx_id: str, expect: Expect) -> Transaction | None:
            row = rows.get(tx_id)
            if row is None:
                return None
            if row.state is TxState.SETTLED:
                return row  # settled by an earlier run: terminal, nothing can move it
            async with gate:
                try:
                    want, updates = check_cas(expect, done)
                    cql = self._open()
                    async with cql.serialised("tx", tx_id):
                        hint = (TxState.SETTLED, indexed[tx_id]) if tx_id in indexed else None
                        cas = self._cas(tx_id, want, updates, hint, drops)
                        return await cql.shielded(cas)
                except CasFailed as exc:
                    return exc.current  # settled by an earlier run, or not settleable
                except NotFound:
                    return None

        try:
            found = await asyncio.gather(*(one(i, e) for i, e in wanted))
        finally:  # the old entries in batches, in the background (a left-over is only stale)
            cql = self._open()
            cql.spawn(self._index.drop_many(drops))
        return [tx for tx in found if tx is not None]

    async def refunds_of(self, original_id: str) -> list[Transaction]:
        self._open()
        assert self._index is not None
        if not original_id:
            return []
        return await self._index.refunds_of(original_id)

    # --- PAN vault ----------------------------------------------------------------------
    async def put_vault_entry(
        self, token_digest: str, blob: bytes, key_version: int, now: float
    ) -> bool:
        check_vault_entry(token_digest, key_version)
        self._open()
        assert self._vault is not None
        return await self._vault.put(token_digest, bytes(blob), key_version, now)

    async def get_vault_entry(self, token_digest: str) -> VaultEntry | None:
        self._open()
        assert self._vault is not None
        return await self._vault.get(token_digest)

    # --- leases -------------------------------------------------------------------------
    async def acquire_lease(self, name: str, owner: str, ttl_s: float, now: float) -> bool:
        """Take with ``INSERT … IF NOT EXISTS USING TTL``, renew with ``UPDATE … IF owner``;
        an unknown LWT outcome is settled by a SERIAL read of the writer id."""
        cql = self._open()
        ttl = max(1, math.ceil(ttl_s))
        writer = uuid.uuid4()
        ok, row = await cql.lwt(cql.q.lease_take, (name, owner, writer, ttl))
        if ok is None:
            return await self._lease_written(cql, name, writer)
        if ok:
            return True
        if row.get("owner") != owner:
            return False
        ok, _ = await cql.lwt(cql.q.lease_renew, (ttl, owner, writer, name, owner))
        if ok is None:
            return await self._lease_written(cql, name, writer)
        return bool(ok)

    @staticmethod
    async def _lease_written(cql: Cql, name: str, writer: uuid.UUID) -> bool:
        row = await cql.serial(cql.q.lease_get, (name,)) or {}
        return row.get("writer") == writer

    # --- stand-in usage -----------------------------------------------------------------
    async def standin_reserve(
        self,
        card_token: str,
        currency: str,
        window_start: int,
        window_s: int,
        amount: int,
        limit: int,
    ) -> bool:
        check_reserve(card_token, currency, amount, limit)
        usage = self._standin = self._standin or StandInUsage(self._open())
        ttl = 2 * max(1, int(window_s))
        return await usage.reserve(card_token, currency, window_start, amount, limit, ttl)

    # --- sequences ----------------------------------------------------------------------
    async def next_sequence(self, name: str) -> int:
        self._open()
        assert self._sequences is not None
        return await self._sequences.next(name)
