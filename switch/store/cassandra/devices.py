"""Terminal devices on Cassandra: table ``devices`` (``cql/009_devices.cql``), one partition
per key ID. The rule (``switch.domain.devices.advance``) is applied to the row read at SERIAL
and written by a lightweight transaction conditioned on what was read (``IF NOT EXISTS`` for a
new device, ``IF counter = <read> AND terminal_id = <read>`` after), so a concurrent writer
makes ours fail and we decide again on the fresh row. A write whose outcome is unknown is
settled by reading the row at SERIAL: it is ours when it holds our counter and transmission."""

from __future__ import annotations

from typing import Any

from switch.domain.devices import Advance, Device, DeviceUse, Step, advance, check_use
from switch.domain.errors import StoreUnavailable
from switch.store.cassandra.exec import SERIAL, Cql, Row
from switch.store.cassandra.host import CassandraHost
from switch.store.devices import DeviceStore

_ATTEMPTS = 8
_COLS = "ikid, terminal_id, counter, window, local_date, stan, updated_at"
_CQL = {
    "get": f"SELECT {_COLS} FROM devices WHERE ikid = ?",  # noqa: S608 - fixed columns
    "bind": f"INSERT INTO devices ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",  # noqa: S608
    "advance": "UPDATE devices SET counter = ?, window = ?, local_date = ?, stan = ?, "
    "updated_at = ? WHERE ikid = ? IF counter = ? AND window = ? AND terminal_id = ?",
}


def _device(row: Row) -> Device:
    return Device(
        str(row["ikid"]),
        str(row["terminal_id"]),
        int(row["counter"]),
        int(row["window"]),
        str(row["local_date"]),
        int(row["stan"]),
        float(row["updated_at"] or 0.0),
    )


def _is(device: Device, step: Step, now: float) -> bool:
    """Does ``device`` hold what ``step`` wrote at ``now``?"""
    return (device.counter, device.window, device.updated_at) == (step.counter, step.window, now)


class CassandraDevices(CassandraHost, DeviceStore):
    """Mixin for ``CassandraStore`` (uses its ``_open``); statements prepared on first use,
    off the event loop."""

    async def _device_cql(self) -> tuple[Cql, dict[str, Any]]:
        return await self._prepared("devices", _CQL)

    async def _read(self, cql: Cql, q: dict[str, Any], ikid: str) -> Device | None:
        rows = await cql.run(q["get"], (ikid,), SERIAL)
        return _device(rows[0]) if rows else None

    async def advance_device(self, use: DeviceUse, now: float) -> Advance:
        check_use(use)
        cql, q = await self._device_cql()
        async with cql.serialised("device", use.ikid):
            current = await self._read(cql, q, use.ikid)
            for _ in range(_ATTEMPTS):
                step = advance(current, use)  # raises to refuse
                if step.outcome is Advance.SAME_TRANSMISSION:
                    return step.outcome
                written = (step.counter, step.window, step.local_date, step.stan, now)
                if current is None:
                    ok, _ = await cql.lwt(q["bind"], (use.ikid, use.terminal_id, *written))
                else:
                    expected = (current.counter, current.window, current.terminal_id)
                    ok, _ = await cql.lwt(q["advance"], (*written, use.ikid, *expected))
                if ok:
                    return step.outcome
                fresh = await cql.serial(q["get"], (use.ikid,))
                current = _device(fresh) if fresh else None
                if ok is None and current is not None and _is(current, step, now):
                    return step.outcome  # the write whose outcome was unknown was ours
        raise StoreUnavailable(f"device {use.ikid}: contention did not settle")

    async def get_device(self, ikid: str) -> Device | None:
        cql, q = await self._device_cql()
        return await self._read(cql, q, ikid)
