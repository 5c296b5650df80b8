"""The Cassandra migration loader refuses a numbering with a gap or a repeat (a keyspace migrated
past a missing number would never get it once it landed) and reads the project's own files."""

from pathlib import Path

import pytest

from switch.domain.errors import StoreError
from switch.store.cassandra.schema import CQL_DIR, migrations


def _files(folder: Path, *names: str) -> Path:
    for name in names:
        (folder / name).write_text("CREATE TABLE IF NOT EXISTS t (k int PRIMARY KEY);\n")
    return folder


def test_the_project_migrations_are_numbered_without_a_gap() -> None:
    found = migrations(CQL_DIR)
    assert [m.version for m in found] == list(range(1, len(found) + 1))


@pytest.mark.parametrize(
    "names",
    [("001_a.cql", "003_c.cql"), ("002_b.cql",), ("001_a.cql", "001_b.cql")],
)
def test_a_gap_or_a_repeat_is_refused(tmp_path: Path, names: tuple[str, ...]) -> None:
    with pytest.raises(StoreError, match="numbered 001, 002"):
        migrations(_files(tmp_path, *names))


def test_consecutive_numbers_load_in_order(tmp_path: Path) -> None:
    found = migrations(_files(tmp_path, "002_b.cql", "001_a.cql"))
    assert [(m.version, m.name) for m in found] == [(1, "001_a"), (2, "002_b")]
