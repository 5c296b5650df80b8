"""Unit-test fixtures: ``store``, a real SQLite store on a temporary file (a module that needs
another store defines its own ``store``, which takes precedence)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from switch.store.sqlite.store import SqliteStore


@pytest.fixture
async def store(tmp_path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "switch.db", synchronous="normal")
    await s.open()
    yield s
    await s.close()
