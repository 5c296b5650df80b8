"""What the Cassandra mixins (batches, devices, ledger, revocations, store-and-forward) use of
``CassandraStore``: ``_open()``, the open session's ``Cql``, and :meth:`CassandraHost._prepared`,
each mixin's statements prepared once per session.

``_open`` is declared here for the type checker only; ``CassandraStore`` defines it
(``store.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from switch.store.cassandra.exec import Cql


class CassandraHost:
    """Base of the mixins of ``CassandraStore``."""

    if TYPE_CHECKING:

        def _open(self) -> Cql:
            """The open session's ``Cql``, or StoreUnavailable (``CassandraStore._open``)."""

    _prepared_groups: dict[str, tuple[object, dict[str, Any]]] | None = None

    async def _prepared(self, group: str, texts: Mapping[str, str]) -> tuple[Cql, dict[str, Any]]:
        """The open session's ``Cql`` and ``texts`` prepared on that session, by name.

        Prepared on first use and again after the store reopened its session (a statement
        prepared on a closed session is of no use to the new one); preparing is a blocking
        round trip, so it runs off the event loop. ``group`` names the mixin's cache entry."""
        cql = self._open()
        groups = self._prepared_groups
        if groups is None:
            groups = self._prepared_groups = {}
        hit = groups.get(group)
        if hit is None or hit[0] is not cql.session:
            session = cql.session

            def prepare() -> dict[str, Any]:
                return {name: session.prepare(text) for name, text in texts.items()}

            hit = groups[group] = (session, await asyncio.to_thread(prepare))
        return cql, hit[1]
