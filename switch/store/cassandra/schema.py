"""The Cassandra schema: versioned CQL files under ``switch/store/cassandra/cql/``, applied at open.

``NNN_name.cql`` is schema version NNN. At open a store makes sure the keyspace exists, then
brings it to the newest version it knows:

- the keyspace and the ``schema_meta`` table are created with ``IF NOT EXISTS``; schema_meta
  gets a table id derived from the keyspace name (``WITH id = ...``), so two processes that
  create it at the same moment create the same table, not two tables with different ids
  (concurrent CREATE TABLE of different ids is a known way to break a pre-TCM cluster);
- every other statement runs only under a migration lock, a ``schema_meta`` row taken with
  ``INSERT ... IF NOT EXISTS USING TTL`` (a crashed migrator's lock expires), and each version
  is recorded with a compare-and-set on the ``version`` row; the others poll (bounded) until
  the version is there. Statements are idempotent (IF NOT EXISTS), so a migration cut short
  is simply applied again;
- after each file the driver waits for schema agreement, and the store refuses to open without.

Runs on a worker thread (blocking driver calls), never on the event loop.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cassandra import ConsistencyLevel, InvalidRequest
from cassandra.cluster import NoHostAvailable, Session

from switch.domain.errors import StoreError, StoreUnavailable
from switch.store.cassandra.config import CassandraConfig

CQL_DIR = Path(__file__).resolve().parent / "cql"
META_TABLE = "schema_meta"
LOCK_TTL_S = 120  # a crashed migrator blocks the others at most this long
MIGRATE_TIMEOUT_S = 180.0
POLL_S = 0.2
META_ATTEMPTS = 10  # preparing against a meta table another process has just created
DDL_TIMEOUT_S = 60.0
AGREEMENT_WAIT_S = 60.0

_FILE = re.compile(r"([0-9]{3})_[a-z0-9_]+\.cql")
_ID_NAMESPACE = uuid.UUID("6f1c2a52-5d0e-4b7a-9a43-2f2d3c1e8b10")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(text: str) -> list[str]:
    """CQL statements of a file: ``--`` comments dropped, split at ``;`` ending a line."""
    lines = [line.split("--", 1)[0].rstrip() for line in text.splitlines()]
    statements, current = [], []
    for line in lines:
        if not line.strip():
            continue
        current.append(line)
        if line.endswith(";"):
            statements.append("\n".join(current)[:-1].strip())
            current = []
    if any(part.strip() for part in current):
        raise StoreError("CQL file ends inside a statement (missing ';')")
    return statements


def migrations(directory: Path = CQL_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.cql")):
        match = _FILE.fullmatch(path.name)
        if match is None:
            raise StoreError(f"CQL file {path.name} is not named NNN_name.cql")
        found.append(Migration(int(match[1]), path.stem, tuple(split_statements(path.read_text()))))
    versions = [m.version for m in found]
    if versions != list(range(1, len(versions) + 1)):
        # No gap: a keyspace migrated past a missing number would never get it once it lands
        # (the loader applies what is above the keyspace's version). Two changes in flight take
        # consecutive numbers when they land, not when they are begun.
        raise StoreError(f"CQL files must be numbered 001, 002, ..., each once: {versions}")
    return found


LATEST_VERSION = migrations()[-1].version


def _meta_table_id(keyspace: str) -> uuid.UUID:
    return uuid.uuid5(_ID_NAMESPACE, f"{keyspace}.{META_TABLE}")


def _agree(session: Session) -> None:
    agreed = session.cluster.control_connection.wait_for_schema_agreement(
        wait_time=AGREEMENT_WAIT_S
    )
    if not agreed:
        raise StoreUnavailable(
            f"no schema agreement between Cassandra nodes in {AGREEMENT_WAIT_S} s"
        )


def _create_keyspace(session: Session, cfg: CassandraConfig) -> None:
    # Identifiers are validated by cassandra_config (unquoted CQL identifier pattern).
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {cfg.keyspace} WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', '{cfg.dc}': {cfg.replication}}}",
        timeout=DDL_TIMEOUT_S,
    )
    _agree(session)


def _create_meta(session: Session, cfg: CassandraConfig) -> None:
    ks = cfg.keyspace
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {ks}.{META_TABLE} (name text PRIMARY KEY, version int, "
        f"owner text, since double) WITH id = {_meta_table_id(ks)}",
        timeout=DDL_TIMEOUT_S,
    )
    _agree(session)


class _Meta:
    """The version and lock rows of schema_meta, always through LWTs and SERIAL reads."""

    def __init__(self, session: Session, cfg: CassandraConfig) -> None:
        self.s = session
        t = f"{cfg.keyspace}.{META_TABLE}"
        self.read = session.prepare(f"SELECT version, owner FROM {t} WHERE name = ?")  # noqa: S608
        self.read.consistency_level = getattr(ConsistencyLevel, cfg.serial)
        self.lock = session.prepare(
            f"INSERT INTO {t} (name, owner, since) VALUES ('lock', ?, ?) "  # noqa: S608
            f"IF NOT EXISTS USING TTL {LOCK_TTL_S}"
        )
        self.unlock = session.prepare(f"DELETE FROM {t} WHERE name = 'lock' IF owner = ?")  # noqa: S608
        self.first = session.prepare(
            f"INSERT INTO {t} (name, version) VALUES ('version', ?) IF NOT EXISTS"  # noqa: S608
        )
        self.bump = session.prepare(
            f"UPDATE {t} SET version = ? WHERE name = 'version' IF version = ?"  # noqa: S608
        )

    def version(self) -> int:
        row = self.s.execute(self.read, ("version",)).one()
        return int(row["version"]) if row and row["version"] is not None else 0

    def try_lock(self, owner: str) -> bool:
        result = self.s.execute(self.lock, (owner, time.time()))
        if result.was_applied:
            return True
        row = self.s.execute(self.read, ("lock",)).one()  # our own earlier attempt?
        return bool(row and row["owner"] == owner)

    def release(self, owner: str) -> None:
        self.s.execute(self.unlock, (owner,))

    def record(self, version: int, previous: int) -> None:
        if previous == 0:
            self.s.execute(self.first, (version,))
        else:
            self.s.execute(self.bump, (version, previous))
        if self.version() < version:
            raise StoreError(f"schema version {version} could not be recorded")


def _apply(session: Session, cfg: CassandraConfig, meta: _Meta, found: list[Migration]) -> None:
    current = meta.version()  # again, under the lock
    for migration in found:
        if migration.version <= current:
            continue
        session.set_keyspace(cfg.keyspace)
        for statement in migration.statements:
            session.execute(statement, timeout=DDL_TIMEOUT_S)
        _agree(session)
        meta.record(migration.version, current)
        current = migration.version


def _open_meta(session: Session, cfg: CassandraConfig) -> _Meta:
    """The meta table's statements. When another switch process created the table a moment
    ago, a node may refuse the first statement against it while it still applies the change
    ("table ... does not exist", "Unknown CF"): wait for agreement and try again, bounded."""
    for attempt in range(META_ATTEMPTS):
        try:
            return _Meta(session, cfg)
        except (InvalidRequest, NoHostAvailable):
            if attempt == META_ATTEMPTS - 1:
                raise
            time.sleep(POLL_S * (attempt + 1))  # start-up only, on a worker thread
            _agree(session)
    raise AssertionError("unreachable")


def ensure_schema(
    session: Session, cfg: CassandraConfig, owner: str, check: Callable[[], None] = lambda: None
) -> int:
    """Bring the keyspace to LATEST_VERSION (creating it if needed); returns the version.
    ``check`` runs once the keyspace exists, before anything is read or written in it."""
    found = migrations()
    known = session.cluster.metadata.keyspaces.get(cfg.keyspace)
    if known is None:
        _create_keyspace(session, cfg)
    check()
    if known is None or META_TABLE not in known.tables:
        _create_meta(session, cfg)
    meta = _open_meta(session, cfg)
    deadline = time.monotonic() + MIGRATE_TIMEOUT_S
    while True:
        version = meta.version()
        if version > LATEST_VERSION:
            raise StoreError(
                f"keyspace {cfg.keyspace} has schema version {version}, newer than this code "
                f"({LATEST_VERSION})"
            )
        if version == LATEST_VERSION:
            return version
        if meta.try_lock(owner):
            try:
                _apply(session, cfg, meta, found)
            finally:
                meta.release(owner)
            continue
        if time.monotonic() > deadline:
            raise StoreUnavailable(
                f"schema of {cfg.keyspace} stuck at version {version}: another process holds "
                f"the migration lock for more than {MIGRATE_TIMEOUT_S:.0f} s"
            )
        time.sleep(POLL_S)  # another process migrates: poll its progress (bounded above)
