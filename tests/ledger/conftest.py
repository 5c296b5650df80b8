"""Fixtures of the ledger, dispute and reconciliation tests: a real SQLite state store per test
(the backends' parity is the store contract suite's job, tests/store/test_store_ledger*.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ledgerkit import FEES

from switch.ledger import Ledger
from switch.store import open_store
from switch.store.base import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(f"sqlite:///{tmp_path}/switch.db") as s:
        yield s


@pytest.fixture
def ledger(store: Store) -> Ledger:
    return Ledger(store, FEES)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/switch.db"
