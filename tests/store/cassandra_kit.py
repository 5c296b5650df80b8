"""Cassandra for the store contract suite: one keyspace per test process, emptied before each
test (a plain module, imported by conftest.py).

Why not one keyspace per test: a new keyspace with its tables costs 1-4 s of schema changes on
a 2-core box, for each of some 70 tests. Emptying only the tables that hold rows (TRUNCATE, a
few tens of ms each) keeps the whole Cassandra contract run well under two minutes. Tests of
one process run one after the other, so "empty before each test" means no test sees another's
rows; parallel runs (other processes, pytest-xdist workers) each get their own keyspace.

The URL names a real keyspace on the dev node, so it works from a child process too (the crash
test). The keyspace is dropped at the end of the session (``finish``, from conftest); its name
carries its creation time, and keyspaces left behind by a killed run are dropped by a later
run once older than STALE_AFTER_S.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import uuid
from pathlib import Path

from cassandra.cluster import Cluster, Session

_SUPPORT = str(Path(__file__).resolve().parents[1] / "support")
if _SUPPORT not in sys.path:
    sys.path.insert(0, _SUPPORT)

import cassandra_node  # noqa: E402

from switch.store import open_store  # noqa: E402

PREFIX = "contract_"
STALE_AFTER_S = 6 * 3600
_KEEP = {"schema_meta"}  # the schema version stays: the keyspace stays migrated


class _Keyspace:
    def __init__(self) -> None:
        host = cassandra_node.ensure_single_node()
        self.name = f"{PREFIX}{int(time.time())}_{uuid.uuid4().hex[:8]}"
        self.url = f"cassandra://{host}:{cassandra_node.PORT}/{self.name}?replication=1"
        self.cluster = Cluster([host], port=cassandra_node.PORT)
        self.session: Session = self.cluster.connect()
        self._drop_stale()
        _in_thread(_migrate(self.url))
        rows = self.session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (self.name,)
        )
        self.tables = sorted(r.table_name for r in rows if r.table_name not in _KEEP)

    def _drop_stale(self) -> None:
        now = time.time()
        for row in self.session.execute("SELECT keyspace_name FROM system_schema.keyspaces"):
            name = row.keyspace_name
            if not name.startswith(PREFIX):
                continue
            stamp = name[len(PREFIX) :].split("_", 1)[0]
            if stamp.isdigit() and now - int(stamp) > STALE_AFTER_S:
                self.session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=60)

    def empty(self) -> None:
        for table in self.tables:
            if self.session.execute(f"SELECT * FROM {self.name}.{table} LIMIT 1").one():  # noqa: S608
                self.session.execute(f"TRUNCATE {self.name}.{table}", timeout=60)

    def drop(self) -> None:
        try:
            self.session.execute(f"DROP KEYSPACE IF EXISTS {self.name}", timeout=60)
        finally:
            self.cluster.shutdown()


async def _migrate(url: str) -> None:
    async with open_store(url):
        pass


def _in_thread(coro) -> None:
    """Run a coroutine to its end on a fresh loop in a thread (pytest's loop may be running)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=300)
    if errors:
        raise errors[0]


_keyspace: _Keyspace | None = None


def contract_url(tmp: Path) -> str:
    """STORE_URLS entry: the process's contract keyspace, emptied for this test."""
    global _keyspace
    if _keyspace is None:
        _keyspace = _Keyspace()
    _keyspace.empty()
    return _keyspace.url


def finish() -> None:
    """Drop this process's contract keyspace (pytest_sessionfinish)."""
    global _keyspace
    if _keyspace is not None:
        _keyspace.drop()
        _keyspace = None


def inspect() -> tuple[Session, str]:
    """A plain driver session and the contract keyspace's name, to look at raw rows."""
    assert _keyspace is not None, "call contract_url first"
    return _keyspace.session, _keyspace.name


def host() -> str:
    return cassandra_node.ensure_single_node()
