"""Smoke tests against a real Apache Cassandra 5.0 started by the project's own scripts.

The nodes come from tests/support/cassandra_node.py (which wraps scripts/cassandra/cassctl.py);
the first run downloads the server with Maven into .cassandra/, later runs are offline.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_SUPPORT = str(Path(__file__).resolve().parents[1] / "support")
if _SUPPORT not in sys.path:
    sys.path.insert(0, _SUPPORT)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes a minute or more (e.g. a 3-node cluster)")
