"""Embedded SQLite state store: the zero-setup default for exactly one switch process.

Threading: one single-worker executor owns the connection, so every SQLite call runs on that
thread and never blocks the event loop; each public method is one job on that thread's queue
(``switch.store.sqlite.group``) and at most one SQLite transaction. The authorization's writes
(claim, intent, the risk stage's, record) are *grouped*: those queued while the thread was busy
share one transaction, each in its own SAVEPOINT, and one COMMIT (group commit: one fsync for
many authorizations, each answered only once its writes are durable). Writes open with
``BEGIN IMMEDIATE`` (the write lock is taken up front, so a compare-and-set cannot interleave
with another connection's write and no read-to-write upgrade can deadlock); a compare-and-set
is ``UPDATE ... WHERE id=? AND <expected> = ?``, checks the rowcount, then reads the row back
inside the same transaction.

Three commits per authorization: the claim; ``receive_with_intent`` (vault upsert, INSERT
RECEIVED, attach to the key, RECEIVED -> PENDING as the same compare-and-set ``UPDATE``); and
``record_with_answer`` (the final compare-and-set and the key's completion). Each composite is
one transaction, so the intent is as durable before forwarding as with separate writes, and a
failure inside it rolls the whole of it back (see those methods for the two exceptions: a
duplicate transmission keeps the vault entry, a missing key keeps the recorded outcome).

Durability: WAL mode. ``synchronous=full`` (the default) fsyncs the WAL on every commit, so a
committed intent survives a process crash *and* a power loss or kernel panic; ``normal``
skips that fsync (only checkpoints sync), which still survives ``kill -9`` of the process
(the committed frames are in the OS page cache) but may lose the last commits on power loss.
The switch writes its intent before it calls out, so the default is ``full``;
choose ``sqlite:///path.db?synchronous=normal`` where losing the last commits to a power loss
is acceptable (load tests, development). Measured with benchmarks/store_bench.py on the dev VM
(2 vCPU, ext4 on virtio, bare 4 KiB fsync 0.2-0.35 ms; three runs, medians; an authorization
is claim + vault + insert + attach + two transitions + completion):

    per write (upsert or CAS)                 FULL 0.37-0.41 ms   NORMAL 0.04-0.16 ms
    one authorization, 3 commits              FULL 1.0-1.06 ms    NORMAL 0.53-0.58 ms
      (the same as 7 separate writes)         FULL 2.07-2.17 ms   NORMAL 0.95-1.06 ms
    32 concurrent authorizations, 3 commits   FULL 910-1005 /s    NORMAL 1590-1890 /s
      (the same as 7 separate writes)         FULL 600-650 /s     NORMAL 1220-1780 /s

FULL costs about 1 ms of store thread per authorization out of a 2 s budget, and since writes
are serialised on the one store thread it caps one process near 1,000 authorizations/s, well
above what the rest of one switch process serves on two cores; Cassandra is the backend for
more. Group commit (above) shares each fsync between the authorizations queued behind it.

Errors: any ``sqlite3.Error`` becomes StoreUnavailable (callers fail closed), except a taken
(terminal_id, local_date, stan), which is DuplicateTransmission. A cancelled caller does not
cancel its write: the job on the store thread runs to its end (committed or rolled back).

Idempotency records are expired by ``expires_at`` (``<= now`` means absent); every
``_PURGE_EVERY`` claims, up to ``_PURGE_BATCH`` expired rows are deleted in the same
transaction so that the table does not grow forever.

The PAN vault (``vault`` table, one row per card keyed by token digest) is added by
``CREATE TABLE IF NOT EXISTS``, so stores made before it gain it on open without a schema bump.
``put_vault_entry`` is one upsert whose update only fires for a newer key version.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from switch.domain.devices import DeviceUse, check_use
from switch.domain.errors import NotFound, StoreError, StoreUnavailable
from switch.domain.idempotency import Answer, Claim, IdempotencyRecord, IdemStatus
from switch.domain.risk import Observing, check_observation
from switch.domain.standin import check_reserve
from switch.domain.transactions import (
    COLUMNS,
    CasFailed,
    Changes,
    DuplicateTransmission,
    Expect,
    Recorded,
    Transaction,
    TxState,
    TxType,
    check_cas,
    check_new,
    check_transition,
)
from switch.domain.vault import VaultEntry, VaultWrite, check_vault_entry
from switch.store import statements
from switch.store.base import Store
from switch.store.sqlite import devices as sqlite_devices
from switch.store.sqlite import standin as sqlite_standin
from switch.store.sqlite.batches import SCHEMA as _BATCH_SCHEMA
from switch.store.sqlite.batches import SqliteBatches
from switch.store.sqlite.group import StoreQueue
from switch.store.sqlite.imports import SqliteImports
from switch.store.sqlite.ledger import LEDGER_SCHEMA, LINES_V3, SqliteLedgerMixin
from switch.store.sqlite.offline import SCHEMA as _OFFLINE_SCHEMA
from switch.store.sqlite.offline import SqliteOffline
from switch.store.sqlite.revocations import SCHEMA as REVOCATIONS_SCHEMA
from switch.store.sqlite.revocations import SqliteRevocations
from switch.store.sqlite.risk import SCHEMA as _RISK_SCHEMA
from switch.store.sqlite.risk import SqliteRisk
from switch.store.sqlite.saf import SCHEMA as _SAF_SCHEMA
from switch.store.sqlite.saf import SqliteSafMixin

T = TypeVar("T")

# 2: the cross-border columns (issue 16, _FX_COLUMNS); 3: ledger_lines clustered in read order
# (issue 17, switch.store.sqlite.ledger LINES_V3)
SCHEMA_VERSION = 3
SYNCHRONOUS_MODES = ("full", "normal")
# Version 1 -> 2: the transaction's cross-border columns (payswitch.fx), empty for old rows.
_FX_COLUMNS = (
    "billing_minor INTEGER NOT NULL DEFAULT 0",
    "billing_currency TEXT NOT NULL DEFAULT ''",
    "fx_rate TEXT NOT NULL DEFAULT ''",
    "rate_table TEXT NOT NULL DEFAULT ''",
    "billing_captured_minor INTEGER NOT NULL DEFAULT 0",
    "dcc_markup_bps INTEGER NOT NULL DEFAULT 0",
    "dcc_local_minor INTEGER NOT NULL DEFAULT 0",
    "dcc_local_currency TEXT NOT NULL DEFAULT ''",
)
# The connection's page cache (PRAGMA cache_size; SQLite's default is 2 MiB; URL option
# ``cache_mib``). The cut-off's page writes land at random in B-trees keyed by random ids
# (transactions by id, postings by id and RRN); at a million-transaction day their interior
# pages alone outgrow 2 MiB, so every lookup re-read them from the OS. The cache fills only as
# pages are used: an idle store costs nothing more.
CACHE_MIB = 128
# WAL frames (pages) after which a commit checkpoints them into the database file (URL option
# ``wal_autocheckpoint``; SQLite's default 1,000, kept for the switch: its commits are small
# and a checkpoint runs inside the commit that triggers it, so a larger one is a longer stall
# of the store thread). A page of the cut-off dirties thousands of pages: at 1,000 every commit
# also copied all of them into the file and fsynced it; the back office's runs give a larger
# WAL (``BULK_WAL_AUTOCHECKPOINT``), so a page rewritten by many commits is copied once.
# Measured on the apply step alone (2026-12-07, a shared 2-core VM; getrusage oublock):
# 100k / 300k day, WAL 1,000: 18.7M / 90.7M blocks; 32,768: 4.4M / 28.3M; 262,144: 3.1M / 13.1M.
WAL_AUTOCHECKPOINT = 1_000
BULK_WAL_AUTOCHECKPOINT = 262_144  # 1 GiB of 4 KiB pages, on disk (the cache is apart)
_CACHE_MIB_RANGE = (2, 16_384)
_WAL_RANGE = (100, 1_000_000)
_PURGE_EVERY = 256
_PURGE_BATCH = 256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    state TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    stan INTEGER NOT NULL,
    local_date TEXT NOT NULL,
    local_time TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    card_token TEXT NOT NULL,
    masked_pan TEXT NOT NULL,
    bin TEXT NOT NULL,
    scheme TEXT NOT NULL,
    rrn TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    deadline_at REAL NOT NULL,
    acquirer_id TEXT NOT NULL,
    captured_minor INTEGER NOT NULL,
    refunded_minor INTEGER NOT NULL,
    response_code TEXT NOT NULL,
    auth_code TEXT NOT NULL,
    original_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    entry_mode TEXT NOT NULL,
    mcc TEXT NOT NULL,
    billing_minor INTEGER NOT NULL DEFAULT 0,
    billing_currency TEXT NOT NULL DEFAULT '',
    fx_rate TEXT NOT NULL DEFAULT '',
    rate_table TEXT NOT NULL DEFAULT '',
    billing_captured_minor INTEGER NOT NULL DEFAULT 0,
    dcc_markup_bps INTEGER NOT NULL DEFAULT 0,
    dcc_local_minor INTEGER NOT NULL DEFAULT 0,
    dcc_local_currency TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL,
    UNIQUE (terminal_id, local_date, stan)
);
CREATE INDEX IF NOT EXISTS transactions_by_state ON transactions (state, deadline_at);
CREATE INDEX IF NOT EXISTS transactions_by_original ON transactions (original_id)
    WHERE original_id != '';
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    operation TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    transaction_id TEXT NOT NULL,
    response BLOB NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency (expires_at);
CREATE TABLE IF NOT EXISTS sequences (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS vault (
    token_digest TEXT PRIMARY KEY,
    blob BLOB NOT NULL,
    key_version INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS vault_by_version ON vault (key_version);
"""
_SCHEMA += REVOCATIONS_SCHEMA
_SCHEMA += _OFFLINE_SCHEMA  # offline claims, cases, upload marks (switch.store.sqlite.offline)
_SCHEMA += sqlite_devices.SCHEMA  # terminal devices (switch.store.sqlite.devices)
_SCHEMA += sqlite_standin.SCHEMA  # stand-in usage (switch.store.sqlite.standin)
_SCHEMA += LEDGER_SCHEMA
_SCHEMA += _SAF_SCHEMA  # the store-and-forward queue (sqlite_saf.py)
_SCHEMA += _BATCH_SCHEMA
_SCHEMA += _RISK_SCHEMA  # risk counters, sightings, decisions (sqlite/risk.py)

_TX_COLUMNS = ", ".join(COLUMNS)
_IN_CHUNK = 500  # ids per IN (...) query: under SQLite's bound-parameter limit
_TX_SELECT = f"SELECT {_TX_COLUMNS} FROM transactions"  # noqa: S608 (fixed column names)
_TX_INSERT = (
    f"INSERT INTO transactions ({_TX_COLUMNS}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(COLUMNS))})"
)
_IDEM_COLUMNS = (
    "scope, key, operation, fingerprint, status, created_at, expires_at, transaction_id, response"
)
_IDEM_SELECT = f"SELECT {_IDEM_COLUMNS} FROM idempotency WHERE scope = ? AND key = ?"  # noqa: S608
_TYPE_POS = COLUMNS.index("type")
_STATE_POS = COLUMNS.index("state")
_TERMINAL_POS = COLUMNS.index("terminal_id")
_DATE_POS = COLUMNS.index("local_date")
_STAN_POS = COLUMNS.index("stan")


def _to_db(value: object) -> object:
    """Enums as their plain string value (sqlite3 binds str subclasses, but be explicit)."""
    if isinstance(value, TxState | TxType | IdemStatus):
        return value.value
    return value


def _tx_from_row(row: tuple[Any, ...]) -> Transaction:
    values = list(row)
    values[_TYPE_POS] = TxType(values[_TYPE_POS])
    values[_STATE_POS] = TxState(values[_STATE_POS])
    return Transaction(*values)


def _idem_from_row(row: tuple[Any, ...]) -> IdempotencyRecord:
    scope, key, operation, fingerprint, status, created, expires, tx_id, response = row
    return IdempotencyRecord(
        scope=scope,
        key=key,
        operation=operation,
        fingerprint=fingerprint,
        status=IdemStatus(status),
        created_at=created,
        expires_at=expires,
        transaction_id=tx_id,
        response=bytes(response),
    )


def _check_path(path: str | Path) -> Path:
    text = str(path)
    if not text or text == ":memory:" or text.startswith("file::memory:") or "mode=memory" in text:
        raise ValueError("the SQLite store needs a file path: an in-memory database is not durable")
    return Path(text)


class SqliteStore(
    sqlite_devices.SqliteDevices,
    SqliteBatches,
    SqliteImports,
    SqliteRevocations,
    SqliteOffline,
    SqliteRisk,
    SqliteLedgerMixin,
    SqliteSafMixin,
    Store,
):
    """``Store`` on one SQLite file in WAL mode; see the module docstring for the choices."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "full",
        busy_timeout_ms: int = 2000,
        cache_mib: int = CACHE_MIB,
        wal_autocheckpoint: int = WAL_AUTOCHECKPOINT,
    ) -> None:
        self.path = _check_path(path)
        mode = synchronous.lower()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
        if busy_timeout_ms < 0:
            raise ValueError("busy_timeout_ms must be >= 0")
        for name, value, (low, high) in (
            ("cache_mib", cache_mib, _CACHE_MIB_RANGE),
            ("wal_autocheckpoint", wal_autocheckpoint, _WAL_RANGE),
        ):
            if not low <= value <= high:
                raise ValueError(f"{name} must be within {low}..{high}, not {value}")
        self.cache_mib = cache_mib
        self.wal_autocheckpoint = wal_autocheckpoint
        self.synchronous = mode
        self.busy_timeout_ms = busy_timeout_ms
        self._executor: ThreadPoolExecutor | None = None
        self._queue: StoreQueue | None = None
        self._grouping = False  # set by the queue on the store thread while a group runs
        self._conn: sqlite3.Connection | None = None
        self._claims = 0

    # --- plumbing -----------------------------------------------------------------------
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the store thread, alone: one hop. sqlite3 errors become
        StoreUnavailable there, where a failed transaction is also rolled back."""
        queue = self._queue
        if queue is None:
            raise StoreUnavailable("SQLite store is not open")
        result: T = await queue.call(fn, args, False)
        return result

    async def _call_grouped(self, fn: Callable[..., T], *args: Any) -> T:
        """Like ``_call``, for a write whose ``fn`` makes every change through ``_write``: it
        may share its transaction and fsync with others (``switch.store.sqlite.group``)."""
        queue = self._queue
        if queue is None:
            raise StoreUnavailable("SQLite store is not open")
        result: T = await queue.call(fn, args, True)
        return result

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        conn = self._conn
        if conn is None:
            raise StoreUnavailable("SQLite store is not open")
        try:
            return fn(conn, *args)
        except sqlite3.Error as exc:
            self._rollback(conn)
            raise StoreUnavailable(f"SQLite: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            self._rollback(conn)
            raise

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the connection reports the first error; nothing more to do here

    def _write(self, conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
        """``body`` inside one BEGIN IMMEDIATE ... COMMIT; any exception rolls back. In a
        group (``switch.store.sqlite.group``) inside a SAVEPOINT of the group's transaction
        instead: an exception rolls back to it, and the group's COMMIT makes it durable."""
        if self._grouping:
            conn.execute("SAVEPOINT w")
            try:
                result = body(conn)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                raise
            conn.execute("RELEASE w")
            return result
        conn.execute("BEGIN IMMEDIATE")
        result = body(conn)  # on error, _guarded rolls back
        statements.count("sqlite", "commit")
        statements.count("sqlite", "write")
        conn.execute("COMMIT")
        return result

    # --- lifecycle ----------------------------------------------------------------------
    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        try:
            await asyncio.wrap_future(self._executor.submit(self._connect))
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._queue = StoreQueue(self._executor, self)

    def _connect(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                timeout=self.busy_timeout_ms / 1000,
                cached_statements=256,
            )
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open SQLite store {self.path}: {exc}") from exc
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreUnavailable(f"SQLite refused WAL mode (got {mode!r})")
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            conn.execute(f"PRAGMA cache_size=-{self.cache_mib * 1024}")
            conn.execute(f"PRAGMA wal_autocheckpoint={self.wal_autocheckpoint}")
            self._write(conn, self._migrate)
        except BaseException as exc:
            self._rollback(conn)
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreUnavailable(f"SQLite schema: {exc}") from exc
            raise
        self._conn = conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        # Statement by statement: executescript() would COMMIT our transaction first.
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        version = row[0]
        if version is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            return
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store schema version {version} is newer than this code ({SCHEMA_VERSION})"
            )
        # Each step in turn, in the same transaction as the rest; then the row is bumped.
        if version < 2:  # the cross-border columns
            have = {r[1] for r in conn.execute("PRAGMA table_info(transactions)")}
            for column in _FX_COLUMNS:
                if column.split()[0] not in have:
                    conn.execute(f"ALTER TABLE transactions ADD COLUMN {column}")
        if version < 3:  # ledger_lines clustered in read order
            for statement in LINES_V3:
                conn.execute(statement)
        # Later migrations: `if version < N:` its steps here.
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    async def close(self) -> None:
        executor = self._executor
        if executor is None:
            return
        self._executor = None
        self._queue = None
        await asyncio.wrap_future(executor.submit(self._disconnect))
        executor.shutdown(wait=False)

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass  # closing is best effort; committed data is already in the WAL

    # --- idempotency keys ---------------------------------------------------------------
    async def claim_idempotency(
        self, scope: str, key: str, operation: str, fingerprint: str, ttl_s: float, now: float
    ) -> Claim:
        self._claims += 1
        purge = self._claims % _PURGE_EVERY == 0
        return await self._call_grouped(
            self._claim, scope, key, operation, fingerprint, ttl_s, now, purge
        )

    def _claim(
        self,
        conn: sqlite3.Connection,
        scope: str,
        key: str,
        operation: str,
        fingerprint: str,
        ttl_s: float,
        now: float,
        purge: bool,
    ) -> Claim:
        def body(c: sqlite3.Connection) -> Claim:
            if purge:
                c.execute(
                    "DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency "
                    "WHERE expires_at <= ? LIMIT ?)",
                    (now, _PURGE_BATCH),
                )
            # Insert, or replace a row that has expired; a live row is left alone.
            cur = c.execute(
                "INSERT INTO idempotency (scope, key, operation, fingerprint, status, "
                "created_at, expires_at, transaction_id, response) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, '', x'') "
                "ON CONFLICT (scope, key) DO UPDATE SET operation = excluded.operation, "
                "fingerprint = excluded.fingerprint, status = excluded.status, "
                "created_at = excluded.created_at, expires_at = excluded.expires_at, "
                "transaction_id = '', response = x'' "
                "WHERE idempotency.expires_at <= excluded.created_at",
                (scope, key, operation, fingerprint, IdemStatus.IN_FLIGHT.value, now, now + ttl_s),
            )
            claimed = cur.rowcount == 1
            row = c.execute(_IDEM_SELECT, (scope, key)).fetchone()
            return Claim(claimed=claimed, record=_idem_from_row(row))

        return self._write(conn, body)

    async def attach_transaction(self, scope: str, key: str, transaction_id: str) -> None:
        await self._call(self._update_idem, scope, key, "transaction_id = ?", (transaction_id,))

    async def complete_idempotency(
        self, scope: str, key: str, response: bytes, transaction_id: str
    ) -> None:
        await self._call(
            self._update_idem,
            scope,
            key,
            "status = ?, response = ?, transaction_id = ?",
            (IdemStatus.COMPLETED.value, bytes(response), transaction_id),
        )

    @staticmethod
    def _update_idem(
        conn: sqlite3.Connection, scope: str, key: str, assignments: str, values: tuple[object, ...]
    ) -> None:
        # One autocommit statement is its own transaction: no BEGIN/COMMIT round trips. Only
        # an IN_FLIGHT key: a completed key's answer is final (see IdempotencyStore).
        cur = conn.execute(
            f"UPDATE idempotency SET {assignments} "  # noqa: S608
            "WHERE scope = ? AND key = ? AND status = ?",
            (*values, scope, key, IdemStatus.IN_FLIGHT.value),
        )
        if cur.rowcount != 1:
            raise NotFound(f"no idempotency record in flight for key {key!r} of {scope!r}")

    async def get_idempotency(self, scope: str, key: str, now: float) -> IdempotencyRecord | None:
        return await self._call(self._get_idem, scope, key, now)

    @staticmethod
    def _get_idem(
        conn: sqlite3.Connection, scope: str, key: str, now: float
    ) -> IdempotencyRecord | None:
        row = conn.execute(_IDEM_SELECT, (scope, key)).fetchone()
        if row is None:
            return None
        record = _idem_from_row(row)
        return record if record.expires_at > now else None

    async def release_idempotency(self, scope: str, key: str) -> None:
        await self._call(self._release, scope, key)

    @staticmethod
    def _release(conn: sqlite3.Connection, scope: str, key: str) -> None:
        conn.execute(
            "DELETE FROM idempotency WHERE scope = ? AND key = ? AND status = ?",
            (scope, key, IdemStatus.IN_FLIGHT.value),
        )

    # --- transactions -------------------------------------------------------------------
    async def insert_transaction(self, tx: Transaction) -> None:
        check_new(tx)
        await self._call(self._insert, tuple(_to_db(getattr(tx, c)) for c in COLUMNS))

    @staticmethod
    def _insert(conn: sqlite3.Connection, values: tuple[object, ...]) -> None:
        try:
            conn.execute(_TX_INSERT, values)  # autocommit: one statement, one transaction
        except sqlite3.IntegrityError as exc:
            row = conn.execute(
                "SELECT id FROM transactions WHERE terminal_id = ? AND local_date = ? AND stan = ?",
                (values[_TERMINAL_POS], values[_DATE_POS], values[_STAN_POS]),
            ).fetchone()
            if row is not None:
                raise DuplicateTransmission(row[0]) from None
            raise StoreError(f"transaction {values[0]} refused: {exc}") from exc

    async def get_transaction(self, tx_id: str) -> Transaction | None:
        return await self._call(self._get_tx, tx_id)

    @staticmethod
    def _get_tx(conn: sqlite3.Connection, tx_id: str) -> Transaction | None:
        row = conn.execute(f"{_TX_SELECT} WHERE id = ?", (tx_id,)).fetchone()
        return None if row is None else _tx_from_row(row)

    async def compare_and_set(self, tx_id: str, expected: Expect, changes: Changes) -> Transaction:
        want, change = check_cas(expected, changes)
        sql, params = self._cas_sql(tx_id, want, change)
        return await self._call(self._cas, tx_id, sql, params)

    @staticmethod
    def _cas_sql(
        tx_id: str, expected: Mapping[str, object], changes: Mapping[str, object]
    ) -> tuple[str, tuple[object, ...]]:
        """The compare-and-set as one UPDATE (arguments already checked by ``check_cas``)."""
        sets = [f"{name} = ?" for name in changes] + ["version = version + 1"]
        where = ["id = ?"] + [f"{name} = ?" for name in expected]
        sql = f"UPDATE transactions SET {', '.join(sets)} WHERE {' AND '.join(where)}"  # noqa: S608
        params = (
            *(_to_db(v) for v in changes.values()),
            tx_id,
            *(_to_db(v) for v in expected.values()),
        )
        return sql, params

    def _cas(
        self, conn: sqlite3.Connection, tx_id: str, sql: str, params: tuple[object, ...]
    ) -> Transaction:
        return self._write(conn, lambda c: self._cas_body(c, tx_id, sql, params))

    def _cas_body(
        self, c: sqlite3.Connection, tx_id: str, sql: str, params: tuple[object, ...]
    ) -> Transaction:
        """Inside an open write transaction: apply, read back, or raise (the caller's
        transaction is then rolled back by ``_guarded``)."""
        updated = c.execute(sql, params).rowcount
        current = self._get_tx(c, tx_id)
        if current is None:
            raise NotFound(f"no transaction {tx_id}")
        if updated != 1:
            raise CasFailed(current)  # rolled back: nothing was written anyway
        return current

    # --- composite writes: one transaction, one commit each -----------------------------
    async def receive_with_intent(
        self,
        tx: Transaction,
        *,
        vault: VaultWrite | None,
        attach: tuple[str, str] | None,
        acquirer_id: str,
        now: float,
        device: DeviceUse | None = None,
        risk: Observing | None = None,
    ) -> Transaction:
        """The contract's steps in one BEGIN IMMEDIATE transaction: one commit (fsync). All or
        nothing, except that a duplicate transmission commits the vault entry alone, as the
        step-by-step default leaves it (see ``Store.receive_with_intent``). ``risk`` is
        observed in the same transaction, last (``SqliteRisk._observe_for_intent``)."""
        if risk is not None:
            check_observation(risk.observation)
        check_new(tx)
        if tx.state is not TxState.RECEIVED:
            raise ValueError("receive_with_intent: the transaction must be new (RECEIVED)")
        if vault is not None:
            check_vault_entry(vault.token_digest, vault.key_version)
        if device is not None:
            check_use(device)
        values = tuple(_to_db(getattr(tx, c)) for c in COLUMNS)
        return await self._call_grouped(
            self._receive, tx, values, vault, attach, acquirer_id, now, device, risk
        )

    def _receive(
        self,
        conn: sqlite3.Connection,
        tx: Transaction,
        values: tuple[object, ...],
        vault: VaultWrite | None,
        attach: tuple[str, str] | None,
        acquirer_id: str,
        now: float,
        device: DeviceUse | None,
        risk: Observing | None,
    ) -> Transaction:
        def body(c: sqlite3.Connection) -> Transaction | DuplicateTransmission:
            done = intent(c)
            if risk is not None and not isinstance(done, DuplicateTransmission):
                self._observe_for_intent(c, risk, now)
            return done

        def intent(c: sqlite3.Connection) -> Transaction | DuplicateTransmission:
            if device is not None:
                sqlite_devices.advance_in(c, device, now)  # refused: all rolled back
            if vault is not None:
                self._put_vault(c, vault.token_digest, bytes(vault.blob), vault.key_version, now)
            try:
                self._insert(c, values)  # a failed statement leaves the transaction open
            except DuplicateTransmission as dup:
                return dup  # commit the vault entry only (nothing else was written), raise
            if attach is not None:
                self._update_idem(c, attach[0], attach[1], "transaction_id = ?", (tx.id,))
            if not acquirer_id:
                return tx
            # The RECEIVED -> PENDING compare-and-set on the row inserted just above (under
            # the write lock, so it cannot fail): the state machine is the same as ever.
            c.execute(
                "UPDATE transactions SET state = ?, acquirer_id = ?, updated_at = ?, "
                "version = version + 1 WHERE id = ? AND state = ?",
                (TxState.PENDING.value, acquirer_id, now, tx.id, TxState.RECEIVED.value),
            )
            current = self._get_tx(c, tx.id)
            if current is None or current.state is not TxState.PENDING:
                raise StoreError(f"transaction {tx.id} did not move to PENDING")
            return current

        done = self._write(conn, body)
        if isinstance(done, DuplicateTransmission):
            raise done
        return done

    async def record_with_answer(
        self,
        tx_id: str,
        from_state: TxState,
        to_state: TxState,
        changes: Changes,
        answer: Answer | None,
    ) -> Recorded:
        """The final compare-and-set and the key's completion in one BEGIN IMMEDIATE
        transaction: one commit. A refused compare-and-set rolls back with the key untouched;
        a missing key commits the transition alone (``answered=False``)."""
        check_transition(from_state, to_state)
        want, change = check_cas(Expect(state=from_state), changes.to(to_state))
        sql, params = self._cas_sql(tx_id, want, change)
        return await self._call_grouped(self._record, tx_id, sql, params, answer)

    def _record(
        self,
        conn: sqlite3.Connection,
        tx_id: str,
        sql: str,
        params: tuple[object, ...],
        answer: Answer | None,
    ) -> Recorded:
        def body(c: sqlite3.Connection) -> Recorded:
            current = self._cas_body(c, tx_id, sql, params)
            if answer is None:
                return Recorded(current, answered=False)
            cur = c.execute(
                "UPDATE idempotency SET status = ?, response = ?, transaction_id = ? "
                "WHERE scope = ? AND key = ? AND status = ?",
                (
                    IdemStatus.COMPLETED.value,
                    bytes(answer.response),
                    tx_id,
                    answer.scope,
                    answer.key,
                    IdemStatus.IN_FLIGHT.value,
                ),
            )
            return Recorded(current, answered=cur.rowcount == 1)

        return self._write(conn, body)

    async def transactions_in_state(
        self,
        state: TxState,
        older_than: float,
        limit: int = 100,
        after: tuple[float, str] | None = None,
    ) -> list[Transaction]:
        return await self._call(self._in_state, TxState(state).value, older_than, limit, after)

    @staticmethod
    def _in_state(
        conn: sqlite3.Connection,
        state: str,
        older_than: float,
        limit: int,
        after: tuple[float, str] | None,
    ) -> list[Transaction]:
        if after is None:
            rows = conn.execute(
                f"{_TX_SELECT} WHERE state = ? AND deadline_at < ? "
                "ORDER BY deadline_at, id LIMIT ?",
                (state, older_than, limit),
            ).fetchall()
        else:
            rows = conn.execute(
                f"{_TX_SELECT} WHERE state = ? AND deadline_at < ? AND deadline_at >= ? "
                "AND (deadline_at, id) > (?, ?) ORDER BY deadline_at, id LIMIT ?",
                (state, older_than, after[0], after[0], after[1], limit),
            ).fetchall()
        return [_tx_from_row(r) for r in rows]

    async def get_transactions(self, tx_ids: Sequence[str]) -> list[Transaction]:
        ids = list(dict.fromkeys(tx_ids))
        if not ids:
            return []
        return await self._call(self._get_many, ids)

    @staticmethod
    def _get_many(conn: sqlite3.Connection, ids: list[str]) -> list[Transaction]:
        found: dict[str, Transaction] = {}
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(f"{_TX_SELECT} WHERE id IN ({marks})", chunk):
                tx = _tx_from_row(row)
                found[tx.id] = tx
        return [found[i] for i in ids if i in found]

    async def settle_presented(
        self, captures: Sequence[str], refunds: Sequence[str], now: float
    ) -> list[Transaction]:
        ids = list(dict.fromkeys([*captures, *refunds]))
        if not ids:
            return []
        return await self._call(self._settle_page, list(captures), list(refunds), now, ids)

    def _settle_page(
        self,
        conn: sqlite3.Connection,
        captures: list[str],
        refunds: list[str],
        now: float,
        ids: list[str],
    ) -> list[Transaction]:
        def body(c: sqlite3.Connection) -> list[Transaction]:
            settled, at = TxState.SETTLED.value, _to_db(now)
            c.executemany(
                "UPDATE transactions SET state = ?, updated_at = ?, version = version + 1"
                " WHERE id = ? AND state = ?",
                [(settled, at, i, TxState.CAPTURED.value) for i in captures],
            )
            c.executemany(
                "UPDATE transactions SET state = ?, updated_at = ?, version = version + 1"
                " WHERE id = ? AND state = ? AND type = ?",
                [(settled, at, i, TxState.APPROVED.value, TxType.REFUND.value) for i in refunds],
            )
            return self._get_many(c, ids)

        return self._write(conn, body)

    async def refunds_of(self, original_id: str) -> list[Transaction]:
        if not original_id:
            return []
        return await self._call(self._refunds, original_id)

    @staticmethod
    def _refunds(conn: sqlite3.Connection, original_id: str) -> list[Transaction]:
        rows = conn.execute(
            f"{_TX_SELECT} WHERE original_id = ? AND original_id != '' AND type = ? "
            "ORDER BY created_at, id",
            (original_id, TxType.REFUND.value),
        ).fetchall()
        return [_tx_from_row(r) for r in rows]

    # --- PAN vault ----------------------------------------------------------------------
    async def put_vault_entry(
        self, token_digest: str, blob: bytes, key_version: int, now: float
    ) -> bool:
        check_vault_entry(token_digest, key_version)
        return await self._call(self._put_vault, token_digest, bytes(blob), key_version, now)

    @staticmethod
    def _put_vault(
        conn: sqlite3.Connection, token_digest: str, blob: bytes, key_version: int, now: float
    ) -> bool:
        # One statement, its own transaction; an unchanged card writes no page (no fsync).
        cur = conn.execute(
            "INSERT INTO vault (token_digest, blob, key_version, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (token_digest) DO UPDATE SET blob = excluded.blob, "
            "key_version = excluded.key_version, updated_at = excluded.updated_at "
            "WHERE excluded.key_version > vault.key_version",
            (token_digest, blob, key_version, now, now),
        )
        return cur.rowcount == 1

    async def get_vault_entry(self, token_digest: str) -> VaultEntry | None:
        return await self._call(self._get_vault, token_digest)

    @staticmethod
    def _get_vault(conn: sqlite3.Connection, token_digest: str) -> VaultEntry | None:
        row = conn.execute(
            "SELECT token_digest, blob, key_version, created_at, updated_at FROM vault "
            "WHERE token_digest = ?",
            (token_digest,),
        ).fetchone()
        if row is None:
            return None
        digest, blob, version, created, updated = row
        return VaultEntry(digest, bytes(blob), int(version), created, updated)

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
        args = (card_token, currency, window_start, amount, limit)
        return await self._call(sqlite_standin.reserve, *args)

    # --- sequences ----------------------------------------------------------------------
    async def acquire_lease(self, name: str, owner: str, ttl_s: float, now: float) -> bool:
        return await self._call(self._lease, name, owner, now + ttl_s, now)

    @staticmethod
    def _lease(conn: sqlite3.Connection, name: str, owner: str, until: float, now: float) -> bool:
        # One upsert: taken when absent, renewed by its owner, taken over once expired.
        rows = conn.execute(
            "INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
            "expires_at = excluded.expires_at "
            "WHERE leases.owner = excluded.owner OR leases.expires_at <= ? "
            "RETURNING owner",
            (name, owner, until, now),
        ).fetchall()
        return bool(rows) and rows[0][0] == owner

    async def next_sequence(self, name: str) -> int:
        return await self._call(self._next_seq, name)

    @staticmethod
    def _next_seq(conn: sqlite3.Connection, name: str) -> int:
        # One upsert statement is atomic across connections and processes. fetchall() steps
        # it to completion: an unfinished RETURNING statement would hold its transaction open.
        rows = conn.execute(
            "INSERT INTO sequences (name, value) VALUES (?, 1) "
            "ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
            (name,),
        ).fetchall()
        return int(rows[0][0])
