"""Offline tests reach the store suite's Cassandra keyspace helper (tests/store/cassandra_kit)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_STORE_TESTS = str(Path(__file__).resolve().parents[1] / "store")
if _STORE_TESTS not in sys.path:
    sys.path.insert(0, _STORE_TESTS)

import cassandra_kit  # noqa: E402


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    cassandra_kit.finish()
