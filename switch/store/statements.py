"""Store statements by backend and kind, counted in this process (for the metric
``payswitch_store_statements_total{backend,kind}``, ``switch.core.metrics``).

Why: what an authorization costs the store is its statements, and the kinds cost very
differently: on Cassandra a lightweight transaction (``lwt``) is a Paxos round (four round
trips to a quorum) where a plain ``write`` or ``read`` is one, and a logged ``batch`` one more
(a ``counter`` batch: the risk stage's increments, plain writes);
on SQLite a ``commit`` is an fsync, a ``write`` a write transaction's body (several may share a
commit: ``switch.store.sqlite.group``). The load suite divides them by the authorizations of a
phase. Each backend counts from one thread (SQLite's store thread, Cassandra's event loop).
"""

from __future__ import annotations

from collections import Counter

_COUNTS: Counter[tuple[str, str]] = Counter()


def count(backend: str, kind: str, n: int = 1) -> None:
    _COUNTS[(backend, kind)] += n


def snapshot() -> dict[tuple[str, str], int]:
    return dict(_COUNTS)
