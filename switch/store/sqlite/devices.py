"""Terminal devices on SQLite: one row per DUKPT key ID, changed only inside a write
transaction, so the read-decide-write of ``switch.domain.devices.advance`` is atomic."""

from __future__ import annotations

import sqlite3

from switch.domain.devices import (
    Advance,
    Device,
    DeviceElsewhere,
    DeviceUse,
    advance,
    check_use,
    registered,
)
from switch.store.devices import DeviceStore
from switch.store.sqlite.host import SqliteHost

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    ikid TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    counter INTEGER NOT NULL,
    window INTEGER NOT NULL,
    local_date TEXT NOT NULL,
    stan INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
"""

_SELECT = "SELECT ikid, terminal_id, counter, window, local_date, stan, updated_at FROM devices"


def read_device(c: sqlite3.Connection, ikid: str) -> Device | None:
    row = c.execute(f"{_SELECT} WHERE ikid = ?", (ikid,)).fetchone()
    if row is None:
        return None
    return Device(
        str(row[0]), str(row[1]), int(row[2]), int(row[3]), str(row[4]), int(row[5]), float(row[6])
    )


def advance_in(c: sqlite3.Connection, use: DeviceUse, now: float) -> Advance:
    """Inside an open write transaction: apply ``use`` (raises to refuse it: the caller's
    transaction is then rolled back, nothing written)."""
    step = advance(read_device(c, use.ikid), use)
    if step.outcome is Advance.ADVANCED:
        c.execute(
            "INSERT INTO devices (ikid, terminal_id, counter, window, local_date, stan, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ikid) DO UPDATE SET "
            "counter = excluded.counter, window = excluded.window, "
            "local_date = excluded.local_date, stan = excluded.stan, "
            "updated_at = excluded.updated_at",
            (use.ikid, use.terminal_id, step.counter, step.window, step.local_date, step.stan, now),
        )
    return step.outcome


def register_in(c: sqlite3.Connection, device: Device) -> bool:
    """Inside an open write transaction: add the registered ``device`` unless it exists."""
    current = read_device(c, device.ikid)
    if current is not None:
        if current.terminal_id != device.terminal_id:
            raise DeviceElsewhere(device.ikid)
        return False
    c.execute(
        "INSERT INTO devices (ikid, terminal_id, counter, window, local_date, stan, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (device.ikid, device.terminal_id, 0, 0, "", 0, device.updated_at),
    )
    return True


class SqliteDevices(SqliteHost, DeviceStore):
    """Mixin for ``SqliteStore`` (uses its ``_call`` and ``_write``)."""

    async def advance_device(self, use: DeviceUse, now: float) -> Advance:
        check_use(use)
        return await self._call(self._advance, use, now)

    def _advance(self, conn: sqlite3.Connection, use: DeviceUse, now: float) -> Advance:
        return self._write(conn, lambda c: advance_in(c, use, now))

    async def register_device(self, ikid: str, terminal_id: str, now: float) -> bool:
        device = registered(ikid, terminal_id, now)
        return await self._call(self._register, device)

    def _register(self, conn: sqlite3.Connection, device: Device) -> bool:
        return self._write(conn, lambda c: register_in(c, device))

    async def get_device(self, ikid: str) -> Device | None:
        return await self._call(read_device, ikid)
