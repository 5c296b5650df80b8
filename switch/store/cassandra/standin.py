"""Stand-in usage on Cassandra: a compare-and-set loop on the window's total (LWT).

Read the total, then ``INSERT ... IF NOT EXISTS`` (first use in the window) or ``UPDATE ...
IF total = <read>``; a lost race re-reads and tries again, bounded. An LWT of unknown
outcome is settled by a SERIAL read of the writer id, as the other LWT users of the store do.
Rows live two windows (TTL).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from switch.domain.errors import StoreUnavailable
from switch.store.cassandra.exec import Cql, backoff

ATTEMPTS = 32

_CQL = {
    "get": (
        "SELECT total, writer FROM standin_usage"
        " WHERE card_token = ? AND currency = ? AND window_start = ?"
    ),
    "first": (
        "INSERT INTO standin_usage (card_token, currency, window_start, total, writer)"
        " VALUES (?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?"
    ),
    "add": (
        "UPDATE standin_usage USING TTL ? SET total = ?, writer = ?"
        " WHERE card_token = ? AND currency = ? AND window_start = ? IF total = ?"
    ),
}


class StandInUsage:
    def __init__(self, cql: Cql) -> None:
        self._cql = cql
        self._q: dict[str, Any] | None = None

    async def _statements(self) -> dict[str, Any]:
        if self._q is None:
            session = self._cql.session
            self._q = {
                k: await asyncio.to_thread(session.prepare, text) for k, text in _CQL.items()
            }
        return self._q

    async def reserve(
        self, card_token: str, currency: str, window_start: int, amount: int, limit: int, ttl: int
    ) -> bool:
        if amount > limit:
            return False
        q = await self._statements()
        key = (card_token, currency, window_start)
        rows = await self._cql.run(q["get"], key)
        current = rows[0]["total"] if rows else None
        for attempt in range(ATTEMPTS):
            await backoff(min(attempt, 6))
            target = amount if current is None else current + amount
            if target > limit:
                return False
            writer = uuid.uuid4()
            if current is None:
                ok, row = await self._cql.lwt(q["first"], (*key, target, writer, ttl))
            else:
                ok, row = await self._cql.lwt(q["add"], (ttl, target, writer, *key, current))
            if ok is None:
                row = await self._cql.serial(q["get"], key) or {}
                ok = row.get("writer") == writer and row.get("total") == target
            if ok:
                return True
            current = row.get("total")
        raise StoreUnavailable(f"stand-in usage: no decision after {ATTEMPTS} attempts")
