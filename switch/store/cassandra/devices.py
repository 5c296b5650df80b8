"""Terminal devices on Cassandra: table ``devices`` (``cql/009_devices.cql``), one partition
per key ID. The rule (``switch.domain.devices.advance``) is applied to the row read at SERIAL
and written by a lightweight transaction conditioned on what was read (``IF NOT EXISTS`` for a
new device, ``IF counter = <read> AND terminal_id = <read>`` after), so a concurrent writer
makes ours fail and we decide again on the fresh row. A write whose outcome is unknown is
settled by reading the row at SERIAL: it is ours when it holds our counter and transmission.

The row this process last wrote for a device is kept as a hint (``HINTS`` devices), so the next
use of the device skips the SERIAL read (a Paxos round of its own): the LWT is conditioned on
the hinted counter, window and terminal, so a hint that another process made stale only makes
that LWT fail, and we read at SERIAL and decide again. Only an advance is decided on a hint:
a refusal or a "same transmission" read from it is decided again on the row read at SERIAL
(the hint may be behind the row, never ahead), so the hint never refuses or lets anything
through that the row would not. A device whose hint was found stale (its terminal's requests
reach several switch processes) is not hinted again while it is remembered as shared: there a
hint would cost a failed LWT on top of the read it was meant to save."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from switch.domain.devices import (
    Advance,
    Device,
    DeviceElsewhere,
    DeviceRefused,
    DeviceUse,
    Step,
    advance,
    check_use,
    registered,
)
from switch.domain.errors import StoreUnavailable
from switch.store.cassandra.exec import SERIAL, Cql, Row
from switch.store.cassandra.host import CassandraHost
from switch.store.devices import DeviceStore

_ATTEMPTS = 8
HINTS = 16_384  # devices whose last row written here is kept (see the module doc)
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

    _device_hints: OrderedDict[str, Device] | None = None

    def _device_hint_map(self) -> OrderedDict[str, Device]:
        if self._device_hints is None:
            self._device_hints = OrderedDict()
        return self._device_hints

    _device_shared: OrderedDict[str, None] | None = None

    def _shared_devices(self) -> OrderedDict[str, None]:
        if self._device_shared is None:
            self._device_shared = OrderedDict()
        return self._device_shared

    def _remember_device(self, device: Device) -> None:
        if device.ikid in self._shared_devices():
            return  # another process writes it too: read it each time
        hints = self._device_hint_map()
        hints[device.ikid] = device
        hints.move_to_end(device.ikid)
        while len(hints) > HINTS:
            hints.popitem(last=False)

    async def advance_device(self, use: DeviceUse, now: float) -> Advance:
        check_use(use)
        cql, q = await self._device_cql()
        async with cql.serialised("device", use.ikid):
            hints = self._device_hint_map()
            current = hints.pop(use.ikid, None)  # back in only once a write of ours holds
            hinted = current is not None
            if not hinted:
                current = await self._read(cql, q, use.ikid)
            for _ in range(_ATTEMPTS):
                try:
                    step = advance(current, use)  # raises to refuse
                except DeviceRefused:
                    if not hinted:
                        raise
                    step = None
                if step is None or (hinted and step.outcome is Advance.SAME_TRANSMISSION):
                    hinted = False  # decided on the row itself, never on a hint
                    current = await self._read(cql, q, use.ikid)
                    continue
                if step.outcome is Advance.SAME_TRANSMISSION:
                    return step.outcome
                written = (step.counter, step.window, step.local_date, step.stan, now)
                if current is None:
                    terminal = use.terminal_id
                    ok, _ = await cql.lwt(q["bind"], (use.ikid, terminal, *written))
                else:
                    terminal = current.terminal_id
                    expected = (current.counter, current.window, current.terminal_id)
                    ok, _ = await cql.lwt(q["advance"], (*written, use.ikid, *expected))
                if ok:
                    self._remember_device(Device(use.ikid, terminal, *written))
                    return step.outcome
                if hinted:  # stale: another process advanced it
                    shared = self._shared_devices()
                    shared[use.ikid] = None
                    while len(shared) > HINTS:
                        shared.popitem(last=False)
                hinted = False
                fresh = await cql.serial(q["get"], (use.ikid,))
                current = _device(fresh) if fresh else None
                if ok is None and current is not None and _is(current, step, now):
                    return step.outcome  # the write whose outcome was unknown was ours
        raise StoreUnavailable(f"device {use.ikid}: contention did not settle")

    async def register_device(self, ikid: str, terminal_id: str, now: float) -> bool:
        device = registered(ikid, terminal_id, now)
        cql, q = await self._device_cql()
        row = (ikid, terminal_id, 0, 0, "", 0, now)
        async with cql.serialised("device", ikid):
            self._device_hint_map().pop(ikid, None)
            ok, _ = await cql.lwt(q["bind"], row)
            if ok is None:  # outcome unknown: a SERIAL read settles the pending round first
                fresh = await cql.serial(q["get"], (ikid,))
                current = _device(fresh) if fresh else None
            else:
                current = await self._read(cql, q, ikid)
        if current is None:
            raise StoreUnavailable(f"device {ikid}: registration not readable")
        if current.terminal_id != device.terminal_id:
            raise DeviceElsewhere(ikid)
        # ok None (outcome unknown): ours when the row is exactly what we wrote.
        return bool(ok) or (ok is None and current.updated_at == now and current.counter == 0)

    async def get_device(self, ikid: str) -> Device | None:
        cql, q = await self._device_cql()
        return await self._read(cql, q, ikid)
