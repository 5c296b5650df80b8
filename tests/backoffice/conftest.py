"""Fixtures of the back office's process tests: a throwaway HSM home for the network nodes;
the store suite's Cassandra keyspace kit (one migrated keyspace per test process, emptied before
each use, dropped at the end of the session) for the crash-rerun test's Cassandra cases."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hsm.testing import process_test_config

_STORE_TESTS = str(Path(__file__).resolve().parents[1] / "store")
if _STORE_TESTS not in sys.path:
    sys.path.insert(0, _STORE_TESTS)

import cassandra_kit  # noqa: E402  (tests/store/cassandra_kit.py, a plain module)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    cassandra_kit.finish()  # a no-op when no test used it (or the store suite's conftest did)


@pytest.fixture(scope="session", autouse=True)
def hsm_token(tmp_path_factory):
    """A throwaway HSM home (one token per party, PIN files), its location exported to the
    environment the nodes inherit (no PIN is)."""
    return process_test_config(tmp_path_factory.mktemp("softhsm"))
