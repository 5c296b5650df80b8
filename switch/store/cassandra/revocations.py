"""Terminal revocations on Cassandra: one partition (``bucket`` 0) of table
``terminal_revocations`` (``cql/004_terminal_revocations.cql``), so listing them all is a
single-partition read, no scan. Plain writes at the store's consistency (QUORUM): a revocation
is acknowledged only once a quorum holds it, and every switch's QUORUM refresh then sees it.
Concurrent revoke and reinstate of one terminal resolve last-write-wins, which is what two
operators racing on one terminal can expect."""

from __future__ import annotations

from typing import Any

from switch.domain.revocations import Revocation, check_terminal_id
from switch.store.cassandra.exec import Cql
from switch.store.cassandra.host import CassandraHost
from switch.store.revocations import RevocationStore

_BUCKET = 0
_CQL = {
    "revoke": "INSERT INTO terminal_revocations (bucket, terminal_id, reason, revoked_at) "
    "VALUES (?, ?, ?, ?)",
    "get": "SELECT terminal_id FROM terminal_revocations WHERE bucket = ? AND terminal_id = ?",
    "reinstate": "DELETE FROM terminal_revocations WHERE bucket = ? AND terminal_id = ?",
    "list": "SELECT terminal_id, reason, revoked_at FROM terminal_revocations WHERE bucket = ?",
}


class CassandraRevocations(CassandraHost, RevocationStore):
    """Mixin for ``CassandraStore`` (uses its ``_open``); statements prepared on first use,
    off the event loop."""

    async def _revocation_cql(self) -> tuple[Cql, dict[str, Any]]:
        return await self._prepared("revocations", _CQL)

    async def revoke_terminal(self, terminal_id: str, reason: str, now: float) -> Revocation:
        check_terminal_id(terminal_id)
        cql, q = await self._revocation_cql()
        await cql.run(q["revoke"], (_BUCKET, terminal_id, reason, now))
        return Revocation(terminal_id, reason, now)

    async def reinstate_terminal(self, terminal_id: str) -> bool:
        check_terminal_id(terminal_id)
        cql, q = await self._revocation_cql()
        existed = bool(await cql.run(q["get"], (_BUCKET, terminal_id)))
        await cql.run(q["reinstate"], (_BUCKET, terminal_id))
        return existed

    async def revoked_terminals(self) -> list[Revocation]:
        cql, q = await self._revocation_cql()
        rows = await cql.run(q["list"], (_BUCKET,))
        return [
            Revocation(r["terminal_id"], r["reason"] or "", float(r["revoked_at"] or 0.0))
            for r in rows
        ]
