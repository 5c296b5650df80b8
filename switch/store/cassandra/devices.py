"""Terminal devices on Cassandra (``DeviceStore``): the binding of a key ID to its terminal in
``devices`` (``cql/009_devices.cql``, one LWT-only row per key ID), the counter in the
terminal's partition of ``terminal_guards`` (``cql/017_authorization_lwts.cql``), where an
authorization advances it in the same Paxos round as its STAN claim (``guards.py`` has the
reasoning). ``advance_device`` (the operations' use) is that round without a STAN."""

from __future__ import annotations

from switch.domain.devices import Advance, Device, DeviceElsewhere, DeviceUse, check_use, registered
from switch.domain.errors import StoreUnavailable
from switch.store.cassandra.guards import CassandraGuards, _device, _name, bound
from switch.store.devices import DeviceStore


class CassandraDevices(CassandraGuards, DeviceStore):
    """Mixin for ``CassandraStore`` (uses its ``_open``)."""

    async def advance_device(self, use: DeviceUse, now: float) -> Advance:
        check_use(use)
        outcome = await self._guard(use, None, now)
        assert outcome is not None
        return outcome

    async def register_device(self, ikid: str, terminal_id: str, now: float) -> bool:
        device = registered(ikid, terminal_id, now)
        cql, q = await self._guard_cql()
        row = (ikid, terminal_id, 0, 0, "", 0, now)
        async with cql.serialised("device", ikid):
            self._forget_device(ikid)
            ok, _ = await cql.lwt(q["bind"], row)
            fresh = await cql.serial(q["bind_get"], (ikid,))
            current = bound(fresh) if fresh else None
        if current is None:
            raise StoreUnavailable(f"device {ikid}: registration not readable")
        if current.terminal_id != device.terminal_id:
            raise DeviceElsewhere(ikid)
        # ok None (outcome unknown): ours when the row is exactly what we wrote.
        return bool(ok) or (ok is None and current.updated_at == now and current.counter == 0)

    async def get_device(self, ikid: str) -> Device | None:
        cql, q = await self._guard_cql()
        fresh = await cql.serial(q["bind_get"], (ikid,))
        if fresh is None:
            return None
        binding = bound(fresh)
        rows = await self._guard_rows(cql, q, binding.terminal_id, [_name(ikid)], serial=True)
        row = rows.get(_name(ikid))
        return _device(ikid, binding.terminal_id, row) if row else binding
