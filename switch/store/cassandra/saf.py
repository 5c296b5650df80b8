"""The store-and-forward queue on Cassandra (tables in ``cql/007_saf.cql``).

``saf_items`` rows are written only by LWTs: insert ``IF NOT EXISTS``, change ``IF version = v``
with the new row computed by the pure step of ``saf_base``; an unknown outcome is settled by a
SERIAL read of the writer id (as every LWT of this store). A contended change is re-read at
SERIAL and recomputed, a bounded number of times.

``saf_waiting`` lists, per (status, kind), the items that may be live or dead: plain writes,
only a hint. Consistency of the hint, as for the transaction state index:
- a writer that makes an item live or dead writes its entry before the LWT *and again after*
  it, so an entry always exists for the item's current status;
- an entry is deleted ``USING TIMESTAMP`` of a moment before the LWT that made it stale (the
  writer) or before the row was read (a reader that found the row in another status): any
  entry written after that moment, e.g. by a concurrent replay or re-arm, survives the delete.
Listing reads the partitions (bounded) and then each item row at the store's consistency.
Statements are prepared on first use, on a worker thread (preparing blocks).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from cassandra.cluster import Session

from switch.domain.errors import StoreUnavailable
from switch.domain.saf import SAF_COLUMNS, Change, SafItem, SafKind, rearmed
from switch.store.cassandra.exec import Cql, Row, backoff
from switch.store.cassandra.host import CassandraHost

ATTEMPTS = 16
SCAN_LIMIT = 5000  # entries read per (status, kind) partition

_COLS = ", ".join(SAF_COLUMNS)
_SETS = ", ".join(f"{c} = ?" for c in SAF_COLUMNS if c != "id")
_CQL = {
    "get": f"SELECT {_COLS}, writer FROM saf_items WHERE id = ?",  # noqa: S608
    "insert": (
        f"INSERT INTO saf_items ({_COLS}, writer) "  # noqa: S608
        f"VALUES ({', '.join('?' * (len(SAF_COLUMNS) + 1))}) IF NOT EXISTS"
    ),
    "update": f"UPDATE saf_items SET {_SETS}, writer = ? WHERE id = ? IF version = ?",  # noqa: S608
    "mark": "INSERT INTO saf_waiting (status, kind, item_id) VALUES (?, ?, ?)",
    "unmark": (
        "DELETE FROM saf_waiting USING TIMESTAMP ? WHERE status = ? AND kind = ? AND item_id = ?"
    ),
    "scan": f"SELECT item_id FROM saf_waiting WHERE status = ? AND kind = ? LIMIT {SCAN_LIMIT}",  # noqa: S608
}


def _status(item: SafItem) -> str | None:
    if item.done:
        return None
    return "dead" if item.dead else "live"


def _item(row: Row) -> SafItem:
    values = {c: row[c] for c in SAF_COLUMNS}
    values["kind"] = SafKind(values["kind"])
    values["last_error"] = values["last_error"] or ""
    values["leased_by"] = values["leased_by"] or ""
    return SafItem(**values)


def _now_us() -> int:
    return time.time_ns() // 1000


class SafTable:
    def __init__(self, cql: Cql, prepared: dict[str, Any]) -> None:
        self._cql = cql
        self._q = prepared

    @staticmethod
    def prepare(session: Session) -> dict[str, Any]:
        return {name: session.prepare(text) for name, text in _CQL.items()}

    async def _read(self, item_id: str, serial: bool) -> Row | None:
        if serial:
            return await self._cql.serial(self._q["get"], (item_id,))
        rows = await self._cql.run(self._q["get"], (item_id,))
        return rows[0] if rows else None

    async def get(self, item_id: str) -> SafItem | None:
        row = await self._read(item_id, serial=False)
        return _item(row) if row else None

    async def _mark(self, item: SafItem) -> None:
        status = _status(item)
        if status is not None:
            await self._cql.run(self._q["mark"], (status, item.kind.value, item.id))

    async def _unmark(self, status: str, item: SafItem, before_us: int) -> None:
        await self._cql.run(self._q["unmark"], (before_us, status, item.kind.value, item.id))

    async def _write(self, old: SafItem | None, new: SafItem) -> bool | None:
        """One LWT: insert (``old`` None) or compare-and-set on old.version; None when the
        outcome stays unknown is never returned: it is settled by a SERIAL read."""
        writer = uuid.uuid4()
        values = [getattr(new, c) for c in SAF_COLUMNS]
        values[SAF_COLUMNS.index("kind")] = new.kind.value
        if old is None:
            ok, _ = await self._cql.lwt(self._q["insert"], (*values, writer))
        else:
            ok, _ = await self._cql.lwt(
                self._q["update"], (*values[1:], writer, new.id, old.version)
            )
        if ok is None:
            row = await self._read(new.id, serial=True) or {}
            ok = row.get("writer") == writer
        return ok

    async def _apply(self, old: SafItem | None, new: SafItem) -> bool:
        """Write ``new`` over ``old`` keeping the waiting hint right (see the module doc)."""
        started = _now_us()
        await self._mark(new)
        if not await self._write(old, new):
            return False
        await self._mark(new)
        before = _status(old) if old is not None else None
        if before is not None and before != _status(new):
            await self._unmark(before, new, started)
        return True

    async def put(self, item: SafItem) -> SafItem:
        async with self._cql.serialised("saf", item.id):
            return await self._cql.shielded(self._put(item))

    async def _put(self, item: SafItem) -> SafItem:
        serial = False
        for attempt in range(ATTEMPTS):
            await backoff(attempt)
            row = await self._read(item.id, serial)
            serial = True
            if row is None:
                fresh = item.copy(version=1)
                if await self._apply(None, fresh):
                    return fresh
                continue
            existing = _item(row)
            new = rearmed(existing, item)
            if new is None:
                return existing
            new = new.copy(version=existing.version + 1)
            if await self._apply(existing, new):
                return new
        raise StoreUnavailable(f"saf put {item.id}: no decision after {ATTEMPTS} attempts")

    async def update(self, item_id: str, change: Change) -> SafItem | None:
        async with self._cql.serialised("saf", item_id):
            return await self._cql.shielded(self._update(item_id, change))

    async def _update(self, item_id: str, change: Change) -> SafItem | None:
        serial = False
        for attempt in range(ATTEMPTS):
            await backoff(attempt)
            row = await self._read(item_id, serial)
            serial = True
            if row is None:
                raise KeyError(item_id)
            existing = _item(row)
            new = change(existing)
            if new is None:
                return None
            new = new.copy(version=existing.version + 1)
            if await self._apply(existing, new):
                return new
        raise StoreUnavailable(f"saf update {item_id}: no decision after {ATTEMPTS} attempts")

    async def _waiting(self, status: str, kind: SafKind) -> list[SafItem]:
        started = _now_us()
        rows = await self._cql.run(self._q["scan"], (status, kind.value))
        found = await asyncio.gather(*(self.get(r["item_id"]) for r in rows))
        items = []
        for item in found:
            if item is not None and _status(item) == status:
                items.append(item)
            elif item is not None:  # stale hint: the row moved on before we read it
                self._cql.spawn(self._unmark(status, item, started))
        return items

    async def listing(self, dead: bool, limit: int, due_before: float | None) -> list[SafItem]:
        status = "dead" if dead else "live"
        items: list[SafItem] = []
        for kind in SafKind:
            items.extend(await self._waiting(status, kind))
        if due_before is not None:
            items = [i for i in items if i.next_attempt_at <= due_before]
        items.sort(key=lambda i: (i.next_attempt_at, i.id))
        return items[:limit]

    async def depths(self) -> dict[tuple[str, bool], int]:
        out: dict[tuple[str, bool], int] = {}
        for dead in (False, True):
            for item in await self.listing(dead, SCAN_LIMIT * len(SafKind), None):
                key = (item.kind.value, dead)
                out[key] = out.get(key, 0) + 1
        return out


class CassandraSafMixin(CassandraHost):
    """``SafStore`` for ``CassandraStore`` (needs its ``_open()`` session)."""

    _saf_table: SafTable | None = None
    _saf_lock: asyncio.Lock | None = None

    async def _saf(self) -> SafTable:
        cql = self._open()
        table = self._saf_table
        if table is not None and table._cql is cql:
            return table
        if self._saf_lock is None:
            self._saf_lock = asyncio.Lock()
        async with self._saf_lock:
            table = self._saf_table
            if table is None or table._cql is not cql:
                prepared = await asyncio.to_thread(SafTable.prepare, cql.session)
                table = self._saf_table = SafTable(cql, prepared)
        return table

    async def saf_put(self, item: SafItem) -> SafItem:
        return await (await self._saf()).put(item)

    async def saf_get(self, item_id: str) -> SafItem | None:
        return await (await self._saf()).get(item_id)

    async def saf_update(self, item_id: str, change: Change) -> SafItem | None:
        return await (await self._saf()).update(item_id, change)

    async def saf_list(
        self, dead: bool, limit: int = 100, due_before: float | None = None
    ) -> list[SafItem]:
        return await (await self._saf()).listing(dead, limit, due_before)

    async def saf_depths(self) -> dict[tuple[str, bool], int]:
        return await (await self._saf()).depths()
