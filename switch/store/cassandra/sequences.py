"""Shared counters on Cassandra: ``next_sequence`` as an LWT compare-and-set loop.

Callers waiting in one process are served together: the one LWT in flight for a name takes a
run of numbers for everybody queued behind it and hands them out in arrival order, so a burst
costs one Paxos round, not one per caller, and Paxos only sees contention between processes.
An LWT of unknown outcome is settled by a SERIAL read: ours only if the row shows our writer
id and target value; otherwise the numbers are never used (a gap, never a duplicate).
"""

from __future__ import annotations

import asyncio
import uuid

from switch.domain.errors import StoreUnavailable
from switch.store.cassandra.exec import Cql, backoff

ATTEMPTS = 64


class Sequences:
    def __init__(self, cql: Cql) -> None:
        self._cql = cql
        self._known: dict[str, int] = {}  # last value this process saw: a hint for the CAS
        self._waiters: dict[str, list[asyncio.Future[int]]] = {}

    async def next(self, name: str) -> int:
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(name, []).append(waiter)
        async with self._cql.serialised("seq", name):
            if not waiter.done():  # nobody took us along: take everybody queued
                batch = [w for w in self._waiters.pop(name, []) if not w.done()]
                await self._cql.shielded(self._hand_out(name, batch))
        return waiter.result()

    async def _hand_out(self, name: str, batch: list[asyncio.Future[int]]) -> None:
        try:
            first = await self._advance(name, len(batch))
        except Exception as exc:
            for w in batch:
                if not w.done():
                    w.set_exception(exc)
            return
        for i, w in enumerate(batch):
            if not w.done():
                w.set_result(first + i)

    async def _advance(self, name: str, n: int) -> int:
        """Move the counter up by n; the first of the n values now ours."""
        q = self._cql.q
        current = self._known.get(name)
        if current is None:
            rows = await self._cql.run(q.seq_get, (name,))
            current = rows[0]["value"] if rows else None
        for attempt in range(ATTEMPTS):
            await backoff(min(attempt, 6))
            writer = uuid.uuid4()
            target = n if current is None else current + n
            if current is None:
                ok, row = await self._cql.lwt(q.seq_first, (name, target, writer))
            else:
                ok, row = await self._cql.lwt(q.seq_next, (target, writer, name, current))
            if ok is None:
                row = await self._cql.serial(q.seq_get, (name,)) or {}
                ok = row.get("writer") == writer and row.get("value") == target
            if ok:
                self._known[name] = target
                return target - n + 1
            current = row.get("value")  # the value that beat us (None: no row yet)
        raise StoreUnavailable(f"sequence {name}: no decision after {ATTEMPTS} attempts")
