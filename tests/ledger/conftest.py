"""Fixtures of the ledger, dispute and reconciliation tests: a real SQLite state store per test
(the backends' parity is the store contract suite's job, tests/store/test_ledger_store*.py);
``any_store`` runs a test on both backends (Cassandra: the contract suite's keyspace, emptied)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ledgerkit import FEES

from switch.backoffice.ledger import Ledger
from switch.store import open_store
from switch.store.base import Store

_STORE_TESTS = str(Path(__file__).resolve().parents[1] / "store")
if _STORE_TESTS not in sys.path:
    sys.path.insert(0, _STORE_TESTS)

import cassandra_kit  # noqa: E402


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    cassandra_kit.finish()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(f"sqlite:///{tmp_path}/switch.db") as s:
        yield s


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/switch.db"


@pytest.fixture(params=["sqlite", "cassandra"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/switch.db"
    else:
        url = cassandra_kit.contract_url(tmp_path)
    async with open_store(url) as s:
        yield s


@pytest.fixture
def ledger(store: Store) -> Ledger:
    return Ledger(store, FEES)
