"""What the Cassandra mixins (batches, ledger, revocations, store-and-forward) use of
``CassandraStore``: ``_open()``, the open session's ``Cql``.

Declared here for the type checker only; ``CassandraStore`` defines it (``store.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from switch.store.cassandra.exec import Cql


class CassandraHost:
    """Base of the mixins of ``CassandraStore``: no behaviour of its own."""

    if TYPE_CHECKING:

        def _open(self) -> Cql:
            """The open session's ``Cql``, or StoreUnavailable (``CassandraStore._open``)."""
