"""The state store: one interface (``base.Store``, the union of one interface per concern),
backends chosen by URL, one package each (``sqlite/``, ``cassandra/``).

``open_store`` returns an unopened store: ``async with open_store(url) as store:`` or
``await store.open()``. URLs:

- ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (SQLAlchemy's spelling:
  the path is everything after ``sqlite:///``), with optional ``?synchronous=full|normal``,
  ``&busy_timeout_ms=N``, ``&cache_mib=N`` (page cache) and ``&wal_autocheckpoint=N`` (pages;
  the back office's runs take ``BULK_WAL_AUTOCHECKPOINT``: ``switch/store/sqlite/store.py``).
  A file is required (no ``:memory:``): intents must be durable.
- ``cassandra://host1,host2[:port]/keyspace?replication=3&consistency=QUORUM&serial=SERIAL``
  (see ``switch/store/cassandra/config.py`` for every option and the defaults; a single dev
  node: ``cassandra://127.0.0.1/payswitch?replication=1``). Many switch processes may share it.

A new backend adds one entry to ``_BACKENDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict
from urllib.parse import parse_qsl, unquote, urlsplit

from switch.store.base import Store

__all__ = ["Store", "open_store"]


class _SqliteOptions(TypedDict, total=False):
    """The ``SqliteStore`` keyword options a ``sqlite:///`` URL may give."""

    synchronous: str
    busy_timeout_ms: int
    cache_mib: int
    wal_autocheckpoint: int


def _sqlite(url: str) -> Store:
    from switch.store.sqlite.store import SqliteStore

    prefix = "sqlite:///"
    if not url.lower().startswith(prefix):
        raise ValueError(
            f"SQLite store URL must look like sqlite:///path/to/file.db, not {url!r} "
            "(no host part; four slashes for an absolute path)"
        )
    parts = urlsplit(url)
    path = unquote(url[len(prefix) :].split("?", 1)[0].split("#", 1)[0])
    if not path or path == ":memory:":
        raise ValueError(
            f"SQLite store URL {url!r} names no file: the store must be a file for durability "
            "(:memory: is not allowed)"
        )
    options: _SqliteOptions = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if name == "synchronous":
            options["synchronous"] = value
        elif name in ("busy_timeout_ms", "cache_mib", "wal_autocheckpoint"):
            try:
                number = int(value)
            except ValueError:
                raise ValueError(f"{name} must be an integer, not {value!r}") from None
            if name == "busy_timeout_ms":
                options["busy_timeout_ms"] = number
            elif name == "cache_mib":
                options["cache_mib"] = number
            else:
                options["wal_autocheckpoint"] = number
        else:
            raise ValueError(
                f"unknown SQLite store option {name!r} (known: synchronous, busy_timeout_ms, "
                "cache_mib, wal_autocheckpoint)"
            )
    return SqliteStore(path, **options)


def _cassandra(url: str) -> Store:
    from switch.store.cassandra.config import parse_url
    from switch.store.cassandra.store import CassandraStore

    return CassandraStore(parse_url(url))


_BACKENDS: dict[str, Callable[[str], Store]] = {
    "sqlite": _sqlite,
    "cassandra": _cassandra,
}


def open_store(url: str) -> Store:
    """The store a URL names, not yet opened. ValueError for a malformed or unknown URL."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise ValueError(f"store URL {url!r} has no scheme (e.g. sqlite:///var/payswitch.db)")
    backend = _BACKENDS.get(scheme.lower())
    if backend is None:
        raise ValueError(f"unknown store backend {scheme!r} in {url!r}; known: {sorted(_BACKENDS)}")
    return backend(url)
