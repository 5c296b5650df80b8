"""What the SQLite mixins (batches, ledger, revocations, store-and-forward) use of
``SqliteStore``: its store-thread hops ``_call`` and ``_call_grouped`` and its write
transaction ``_write``.

Declared here for the type checker only; ``SqliteStore`` defines them (``store.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

T = TypeVar("T")


class SqliteHost:
    """Base of the mixins of ``SqliteStore``: no behaviour of its own."""

    if TYPE_CHECKING:

        async def _call(self, fn: Callable[..., T], *args: Any) -> T:
            """Run ``fn(conn, *args)`` on the store thread (``SqliteStore._call``)."""

        async def _call_grouped(self, fn: Callable[..., T], *args: Any) -> T:
            """``_call`` for a write that may share a group commit (``SqliteStore``)."""

        def _write(self, conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
            """``body`` in one BEGIN IMMEDIATE ... COMMIT (``SqliteStore._write``)."""
