"""SQLite as the offline parties use it (the device's wallet, the terminal's journal, the
issuer's offline books): WAL, ``synchronous=FULL`` (a commit is fsynced before it returns),
autocommit mode and explicit ``BEGIN IMMEDIATE`` transactions, so that a multi-statement change
is all or nothing and durable when ``transaction`` exits."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def connect(path: Path | str, *, threads: bool = False) -> sqlite3.Connection:
    """The database at ``path`` in WAL mode with ``synchronous=FULL``, its file created
    owner-only (0600) whatever the process's umask: a journal, a device's state and the offline
    books hold transaction records nobody else on the host needs to read, and SQLite gives its
    WAL and shared-memory files the database file's mode."""
    if str(path) != ":memory:":
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)  # an existing file keeps its mode under O_CREAT
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=not threads)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
