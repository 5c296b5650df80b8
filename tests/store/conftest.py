"""Fixtures of the store contract suite: every test that takes ``store`` (or ``store_url``,
``open_more``) runs once per backend in STORE_URLS, unchanged.

Adding a backend is one line in STORE_URLS: a function from the test's own temporary directory
to an ``open_store`` URL naming an empty store that no other test shares (Cassandra: e.g. a
keyspace derived from the directory name, or truncated tables). The URL must also work from a
child process (the crash test opens it there).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import cassandra_kit
import pytest

from switch.store import open_store
from switch.store.base import Store

STORE_URLS: dict[str, Callable[[Path], str]] = {
    "sqlite": lambda tmp: f"sqlite:///{tmp}/store.db",
    # One keyspace per test process, emptied before each test: see cassandra_kit.py.
    "cassandra": cassandra_kit.contract_url,
}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    cassandra_kit.finish()


@pytest.fixture(params=sorted(STORE_URLS))
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return STORE_URLS[request.param](tmp_path)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = open_store(store_url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def open_more(store_url: str) -> AsyncIterator[Callable[[], Awaitable[Store]]]:
    """Open further stores on the same data (other connections / sessions, as another switch
    process would have); all are closed at teardown."""
    opened: list[Store] = []

    async def more() -> Store:
        s = open_store(store_url)
        await s.open()
        opened.append(s)
        return s

    try:
        yield more
    finally:
        for s in opened:
            await s.close()
