"""SQLite backend specifics: URLs, pragmas, threading, schema versioning, error mapping."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from storekit import NOW, new_tx

from switch.domain.errors import StoreError, StoreUnavailable
from switch.domain.transactions import COLUMNS
from switch.store import open_store
from switch.store.sqlite import store as sqlite_mod
from switch.store.sqlite.store import SqliteStore


def _pragma(store: SqliteStore, name: str):
    return store._call(lambda conn: conn.execute(f"PRAGMA {name}").fetchone()[0])


# --- URLs ---------------------------------------------------------------------------------
def test_url_relative_and_absolute_paths() -> None:
    rel = open_store("sqlite:///var/payswitch.db")
    assert isinstance(rel, SqliteStore) and rel.path == Path("var/payswitch.db")
    absolute = open_store("sqlite:////srv/payswitch/state.db?synchronous=normal")
    assert absolute.path == Path("/srv/payswitch/state.db")
    assert absolute.synchronous == "normal"
    assert open_store("sqlite:///x.db").synchronous == "full"  # the durable default
    assert open_store("SQLite:///x.db?busy_timeout_ms=50").busy_timeout_ms == 50
    bulk = open_store("sqlite:///x.db?cache_mib=16&wal_autocheckpoint=32768")
    assert (bulk.cache_mib, bulk.wal_autocheckpoint) == (16, 32768)


async def test_cache_and_checkpoint_options_reach_the_connection(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path}/s.db?cache_mib=16&wal_autocheckpoint=5000") as s:
        assert await _pragma(s, "cache_size") == -16 * 1024
        assert await _pragma(s, "wal_autocheckpoint") == 5000
    async with open_store(f"sqlite:///{tmp_path}/s.db") as s:  # the switch's defaults
        assert await _pragma(s, "cache_size") == -sqlite_mod.CACHE_MIB * 1024
        assert await _pragma(s, "wal_autocheckpoint") == sqlite_mod.WAL_AUTOCHECKPOINT


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("sqlite:///x.db?cache_mib=lots", "cache_mib"),
        ("sqlite:///x.db?cache_mib=0", "cache_mib"),
        ("sqlite:///x.db?wal_autocheckpoint=0", "wal_autocheckpoint"),
        ("sqlite:///x.db?wal_autocheckpoint=-5", "wal_autocheckpoint"),
    ],
)
def test_bad_cache_or_checkpoint_options_name_the_field(url: str, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        open_store(url)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///:memory:",
        "sqlite:///",
        "sqlite://",
        "sqlite://host/x.db",
        "sqlite:///x.db?synchronous=off",
        "sqlite:///x.db?journal_mode=delete",
        "sqlite:///x.db?busy_timeout_ms=soon",
        "payswitch.db",
        "postgres://db/payswitch",
    ],
)
def test_bad_urls_are_refused_clearly(url: str) -> None:
    with pytest.raises(ValueError):
        open_store(url)


def test_memory_database_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="durab"):
        open_store("sqlite:///:memory:")
    with pytest.raises(ValueError, match="durab"):
        SqliteStore(":memory:")


# --- connection setup ---------------------------------------------------------------------
@pytest.mark.parametrize(("mode", "level"), [("full", 2), ("normal", 1)])
async def test_wal_and_synchronous_pragmas(tmp_path: Path, mode: str, level: int) -> None:
    async with SqliteStore(tmp_path / "s.db", synchronous=mode) as store:
        assert await _pragma(store, "journal_mode") == "wal"
        assert await _pragma(store, "synchronous") == level


async def test_every_call_runs_on_the_store_thread(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db") as store:
        name = await store._call(lambda conn: threading.current_thread().name)
        assert name.startswith("sqlite-store") and name != threading.current_thread().name


async def test_creates_parent_directories(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "run" / "state" / "s.db") as store:
        await store.insert_transaction(new_tx())
    assert (tmp_path / "run" / "state" / "s.db").is_file()


async def test_schema_version_is_recorded_once(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    for _ in range(3):
        async with SqliteStore(path):
            pass
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(3,)]
        cols = [r[1] for r in conn.execute("PRAGMA table_info(transactions)")]
    assert tuple(cols) == COLUMNS
    assert not [c for c in cols if "pan" in c and c != "masked_pan"]  # never a PAN column


async def test_version_1_is_migrated_to_the_current_version(tmp_path: Path) -> None:
    """A store written before the cross-border columns gets them (empty for its rows)."""
    path = tmp_path / "s.db"
    async with SqliteStore(path) as store:
        await store.insert_transaction(new_tx(id="old"))
    with sqlite3.connect(path) as conn:  # back to version 1 as it was
        for column in sqlite_mod._FX_COLUMNS:
            conn.execute(f"ALTER TABLE transactions DROP COLUMN {column.split()[0]}")
        conn.execute("UPDATE schema_version SET version = 1")
    async with SqliteStore(path) as store:
        old = await store.get_transaction("old")
        assert old is not None and old.billing_minor == 0 and old.fx_rate == ""
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(3,)]
        cols = {r[1] for r in conn.execute("PRAGMA table_info(transactions)")}
    assert cols == set(COLUMNS)


_V2_LINES = """
CREATE TABLE ledger_lines (
    posting_id TEXT NOT NULL, line_no INTEGER NOT NULL, account TEXT NOT NULL,
    currency TEXT NOT NULL, amount_minor INTEGER NOT NULL, posted_at REAL NOT NULL,
    transaction_id TEXT NOT NULL, PRIMARY KEY (posting_id, line_no));
CREATE INDEX ledger_lines_by_currency ON ledger_lines (currency, posted_at);
"""


async def test_version_2_ledger_lines_are_rebuilt_clustered_with_every_line(
    tmp_path: Path,
) -> None:
    """A version-2 store's ledger lines (a rowid table and its currency index) become the
    version-3 table clustered in read order, every line kept, the old index gone."""
    path = tmp_path / "s.db"
    async with SqliteStore(path):
        pass
    rows = [
        ("p2/A/0", 0, "a:x", "EUR", 500, 20.0, "t2"),
        ("p2/A/0", 1, "m:y", "EUR", -500, 20.0, "t2"),
        ("p1/A/0", 0, "a:x", "EUR", 300, 10.0, "t1"),
        ("p1/A/0", 1, "m:y", "EUR", -300, 10.0, "t1"),
        ("p3/A/0", 0, "a:x", "USD", 7, 15.0, "t3"),
    ]
    with sqlite3.connect(path) as conn:  # back to version 2 as it was
        conn.execute("DROP TABLE ledger_lines")
        conn.executescript(_V2_LINES)
        conn.executemany("INSERT INTO ledger_lines VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("UPDATE schema_version SET version = 2")
    async with SqliteStore(path) as store:
        eur = await store.ledger_entries("EUR")
        assert [(e.posting_id, e.line_no) for e in eur] == [
            ("p1/A/0", 0), ("p1/A/0", 1), ("p2/A/0", 0), ("p2/A/0", 1)
        ]  # fmt: skip
        assert [e.amount_minor for e in await store.ledger_entries("USD")] == [7]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(3,)]
        ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'ledger_lines'").fetchone()
        indexes = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'ledger_lines'"
        ).fetchall()
        assert sorted(conn.execute("SELECT * FROM ledger_lines").fetchall()) == sorted(rows)
    assert "WITHOUT ROWID" in ddl[0] and indexes == []


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with SqliteStore(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    store = SqliteStore(path)
    with pytest.raises(StoreError, match="newer"):
        await store.open()
    with pytest.raises(StoreUnavailable):  # not open: callers fail closed
        await store.get_transaction("tx")


# --- errors -------------------------------------------------------------------------------
async def test_unopenable_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreUnavailable):
        await SqliteStore(tmp_path / "dir.db").open()


async def test_locked_database_is_unavailable_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with SqliteStore(path, busy_timeout_ms=0) as store:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        try:
            with pytest.raises(StoreUnavailable):
                await store.claim_idempotency("T1", "k", "authorize", "fp", 60, NOW)
            with pytest.raises(StoreUnavailable):
                await store.next_sequence("rrn")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert (await store.claim_idempotency("T1", "k", "authorize", "fp", 60, NOW)).claimed
        assert await store.next_sequence("rrn") == 1


async def test_expired_keys_are_purged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_mod, "_PURGE_EVERY", 5)
    async with SqliteStore(tmp_path / "s.db") as store:
        for i in range(4):
            await store.claim_idempotency("T1", f"old{i}", "authorize", "fp", 10, NOW)
        await store.claim_idempotency("T1", "live", "authorize", "fp", 10, NOW + 20)  # 5th
        count = await store._call(
            lambda conn: conn.execute("SELECT count(*) FROM idempotency").fetchone()[0]
        )
        assert count == 1
