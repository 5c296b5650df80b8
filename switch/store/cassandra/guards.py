"""A terminal's guards on Cassandra: its devices' counters and its STAN claims in one partition.

Table ``terminal_guards`` (``cql/017_authorization_lwts.cql``), one partition per terminal:
a device row ``d:<ikid>`` (highest counter, window, latest transmission: the rule is
``switch.domain.devices.advance``) and a transmission row ``t:<local date>:<STAN>`` per
transaction (which one took that STAN; TTL ``SENT_TTL_S``). Because both are in the terminal's
partition, an authorization advances its device and claims its STAN in one conditional batch:
one Paxos round (issue 19), where they were two on two partitions. A concurrent writer (a
replayed KSN or STAN sent to another switch process) makes the batch fail as a whole; we read
the rows at SERIAL and decide again. Every row a batch writes carries its random ``writer``
id, so a batch of unknown outcome is settled by a SERIAL read: ours when a row shows our id.

The binding of a key ID to its terminal stays in ``devices`` (009), written by an LWT once per
device (first use, or ``register_device``); a device row exists in a terminal's partition only
after the binding names that terminal, so the common case never reads ``devices``. A device
used before 017 is seeded from its ``devices`` row (its counter and window) on its first use.

Hints. The device row this process last wrote is kept (``HINTS``), so the common case sends
the batch without reading: conditioned on the hinted counter and window, a hint another
process made stale only fails the batch. Only an advance is decided on a hint or on a plain
read; a refusal or a "same transmission" is decided on a row read at SERIAL (a hint or a plain
read may be behind the row, never ahead). A device found stale is not hinted again while it is
remembered as shared (its terminal's requests reach several switch processes).

Transmissions claimed before 017 (the ``transmissions`` table, and the bulk load's) are read
plainly beside the batch and still answer 94 when their transaction exists.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import EXEC_PROFILE_DEFAULT
from cassandra.query import BatchStatement, BatchType

from switch.domain.devices import (
    Advance,
    Device,
    DeviceElsewhere,
    DeviceRefused,
    DeviceUnregistered,
    DeviceUse,
    advance,
)
from switch.domain.errors import StoreUnavailable
from switch.domain.transactions import DuplicateTransmission
from switch.store.cassandra.exec import SERIAL, Cql, Row, backoff
from switch.store.cassandra.host import CassandraHost
from switch.store.cassandra.index import ORPHAN_S

ATTEMPTS = 16
HINTS = 16_384  # devices whose last row written here is kept (see the module doc)
SENT_TTL_S = 7 * 86_400  # a transmission row's life: STANs of a local date are not reused
_GUARD_COLS = (
    "name, counter, window, local_date, stan, transaction_id, created_at, updated_at, writer"
)
_BIND_COLS = "ikid, terminal_id, counter, window, local_date, stan, updated_at"
_CQL = {
    "rows": f"SELECT {_GUARD_COLS} FROM terminal_guards "  # noqa: S608 - fixed columns
    "WHERE terminal_id = ? AND name IN ?",
    "dev_new": "INSERT INTO terminal_guards (terminal_id, name, counter, window, local_date, "
    "stan, updated_at, writer) VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",
    "dev_advance": "UPDATE terminal_guards SET counter = ?, window = ?, local_date = ?, "
    "stan = ?, updated_at = ?, writer = ? WHERE terminal_id = ? AND name = ? "
    "IF counter = ? AND window = ?",
    "sent_claim": "INSERT INTO terminal_guards (terminal_id, name, transaction_id, created_at, "
    "writer) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?",
    "sent_take_over": "UPDATE terminal_guards USING TTL ? SET transaction_id = ?, "
    "created_at = ?, writer = ? WHERE terminal_id = ? AND name = ? IF writer = ?",
    "sent_release": "DELETE FROM terminal_guards WHERE terminal_id = ? AND name = ? IF writer = ?",
    "sent_before": "SELECT transaction_id FROM transmissions "
    "WHERE terminal_id = ? AND local_date = ? AND stan = ?",
    "tx_exists": "SELECT id FROM transactions WHERE id = ?",
    "bind_get": f"SELECT {_BIND_COLS} FROM devices WHERE ikid = ?",  # noqa: S608
    "bind": f"INSERT INTO devices ({_BIND_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",  # noqa: S608
}


@dataclass(frozen=True, slots=True)
class Sent:
    """A transaction's claim of its terminal's (local date, STAN)."""

    terminal_id: str
    local_date: str
    stan: int
    transaction_id: str
    writer: uuid.UUID

    @property
    def name(self) -> str:
        return f"t:{self.local_date}:{self.stan}"


def _name(ikid: str) -> str:
    return f"d:{ikid}"


def bound(row: Row) -> Device:
    """A ``devices`` row (the binding, and the counter of a device used before 017)."""
    return Device(
        str(row["ikid"]),
        str(row["terminal_id"]),
        int(row["counter"] or 0),
        int(row["window"] or 0),
        str(row["local_date"] or ""),
        int(row["stan"] or 0),
        float(row["updated_at"] or 0.0),
    )


def _device(ikid: str, terminal_id: str, row: Row) -> Device:
    return Device(
        ikid,
        terminal_id,
        int(row["counter"] or 0),
        int(row["window"] or 0),
        str(row["local_date"] or ""),
        int(row["stan"] or 0),
        float(row["updated_at"] or 0.0),
    )


class CassandraGuards(CassandraHost):
    """Mixin for ``CassandraStore``: ``_guard`` advances a device and claims a STAN in one
    Paxos round; statements prepared on first use, off the event loop."""

    _device_hints: OrderedDict[tuple[str, str], Device] | None = None
    _device_shared: OrderedDict[tuple[str, str], None] | None = None

    async def _guard_cql(self) -> tuple[Cql, dict[str, Any]]:
        return await self._prepared("guards", _CQL)

    def _hints(self) -> OrderedDict[tuple[str, str], Device]:
        if self._device_hints is None:
            self._device_hints = OrderedDict()
        return self._device_hints

    def _shared(self) -> OrderedDict[tuple[str, str], None]:
        if self._device_shared is None:
            self._device_shared = OrderedDict()
        return self._device_shared

    def _remember_device(self, device: Device) -> None:
        key = (device.terminal_id, device.ikid)
        if key in self._shared():
            return  # another process writes it too: read it each time
        hints = self._hints()
        hints[key] = device
        hints.move_to_end(key)
        while len(hints) > HINTS:
            hints.popitem(last=False)

    def _forget_device(self, ikid: str) -> None:
        for key in [k for k in self._hints() if k[1] == ikid]:
            self._hints().pop(key, None)

    async def _guard_rows(
        self, cql: Cql, q: dict[str, Any], terminal: str, names: list[str], serial: bool
    ) -> dict[str, Row]:
        profile = SERIAL if serial else EXEC_PROFILE_DEFAULT
        rows = await cql.run(q["rows"], (terminal, names), profile)
        return {str(r["name"]): r for r in rows}

    async def _binding(self, cql: Cql, q: dict[str, Any], use: DeviceUse, now: float) -> Device:
        """The device as its binding has it (bound now when new): DeviceElsewhere for another
        terminal's device, DeviceUnregistered when only registered devices are taken."""
        rows = await cql.run(q["bind_get"], (use.ikid,))
        current = bound(rows[0]) if rows else None
        if current is None:
            if use.registered_only:
                raise DeviceUnregistered(use.ikid)
            ok, _ = await cql.lwt(q["bind"], (use.ikid, use.terminal_id, 0, 0, "", 0, now))
            if ok:
                return Device(use.ikid, use.terminal_id, 0, 0, "", 0, now)
            row = await cql.serial(q["bind_get"], (use.ikid,))
            if row is None:
                raise StoreUnavailable(f"device {use.ikid}: binding not readable")
            current = bound(row)
        if current.terminal_id != use.terminal_id:
            raise DeviceElsewhere(use.ikid)
        return current

    async def _guard(self, use: DeviceUse | None, sent: Sent | None, now: float) -> Advance | None:
        """Advance ``use``'s device and claim ``sent``'s STAN in one conditional batch.

        Raises DeviceRefused or DuplicateTransmission, nothing written (the batch is all or
        nothing: a request answered 94 leaves its counter unused, as it changed nothing; a
        STAN found taken in the pre-017 table is the exception, decided after the batch).
        Returns the device's outcome (None: no device)."""
        assert use is not None or sent is not None
        terminal = use.terminal_id if use is not None else sent.terminal_id  # type: ignore[union-attr]
        if use is not None and sent is not None and sent.terminal_id != use.terminal_id:
            raise ValueError("device and transmission of different terminals")
        cql, q = await self._guard_cql()
        before = None
        if sent is not None:
            before = asyncio.ensure_future(
                cql.run(q["sent_before"], (terminal, sent.local_date, sent.stan))
            )
        try:
            async with cql.serialised("guard", terminal):
                outcome = await self._guard_locked(cql, q, terminal, use, sent, now)
        except BaseException:
            if before is not None:
                before.cancel()
            raise
        if before is not None and sent is not None:
            await self._check_before(cql, q, sent, await before)
        return outcome

    async def _check_before(self, cql: Cql, q: dict[str, Any], sent: Sent, rows: list[Row]) -> None:
        """A STAN taken in the pre-017 ``transmissions`` table (or by the bulk load) by a
        transaction that exists: give our claim back and answer 94."""
        existing = str(rows[0]["transaction_id"] or "") if rows else ""
        if not existing or existing == sent.transaction_id:
            return
        if not await cql.run(q["tx_exists"], (existing,)):
            return
        cql.spawn(cql.lwt(q["sent_release"], (sent.terminal_id, sent.name, sent.writer)))
        raise DuplicateTransmission(existing)

    async def _guard_locked(
        self,
        cql: Cql,
        q: dict[str, Any],
        terminal: str,
        use: DeviceUse | None,
        sent: Sent | None,
        now: float,
    ) -> Advance | None:
        names = ([_name(use.ikid)] if use is not None else []) + (
            [sent.name] if sent is not None else []
        )
        current: Device | None = None  # the device row in the terminal's partition
        taken: Row | None = None  # the transmission row, when seen
        hinted = trusted = False  # decided on a hint / on a row read at SERIAL
        if use is not None:
            current = self._hints().pop((terminal, use.ikid), None)
            hinted = current is not None
            if not hinted:
                rows = await self._guard_rows(cql, q, terminal, names, serial=False)
                found = rows.get(_name(use.ikid))
                current = _device(use.ikid, terminal, found) if found else None
                taken = rows.get(sent.name) if sent is not None else None

        seen: dict[str, Row] = {}

        async def refresh() -> None:
            nonlocal current, taken, hinted, trusted, seen
            rows = seen = await self._guard_rows(cql, q, terminal, names, serial=True)
            if use is not None:
                found = rows.get(_name(use.ikid))
                current = _device(use.ikid, terminal, found) if found else None
            taken = rows.get(sent.name) if sent is not None else None
            hinted, trusted = False, True

        for attempt in range(ATTEMPTS):
            await backoff(attempt)
            writer = sent.writer if sent is not None else uuid.uuid4()
            statements: list[tuple[Any, tuple[Any, ...]]] = []
            outcome: Advance | None = None
            step = None
            if use is not None:
                base = current
                if base is None:
                    base = await self._binding(cql, q, use, now)
                try:
                    step = advance(base, use)
                except DeviceRefused:
                    if trusted:
                        raise
                    await refresh()
                    continue
                if step.outcome is Advance.SAME_TRANSMISSION and not trusted:
                    await refresh()
                    continue
                outcome = step.outcome
                if outcome is Advance.ADVANCED:
                    written = (step.counter, step.window, step.local_date, step.stan, now, writer)
                    if current is None:
                        statements.append((q["dev_new"], (terminal, _name(use.ikid), *written)))
                    else:
                        expected = (current.counter, current.window)
                        params = (*written, terminal, _name(use.ikid), *expected)
                        statements.append((q["dev_advance"], params))
            if sent is not None:
                if taken is not None:
                    await self._taken(cql, sent, taken, now)  # raises unless an orphan
                    take_over = (SENT_TTL_S, sent.transaction_id, now, writer, terminal, sent.name)
                    statements.append((q["sent_take_over"], (*take_over, taken["writer"])))
                else:
                    claim = (terminal, sent.name, sent.transaction_id, now, writer, SENT_TTL_S)
                    statements.append((q["sent_claim"], claim))
            if not statements:
                return outcome  # the device's latest transmission again, nothing to claim
            ok, _ = await self._send(cql, statements)
            if ok is None:  # settle it: a row of the batch showing our writer id
                await refresh()
                ok = any(r.get("writer") == writer for r in seen.values())
            if ok:
                if use is not None and step is not None and outcome is Advance.ADVANCED:
                    d = Device(use.ikid, terminal, step.counter, step.window, step.local_date,
                               step.stan, now)  # fmt: skip
                    self._remember_device(d)
                return outcome
            if ok is False:
                if hinted and use is not None:  # stale: another process advanced it
                    shared = self._shared()
                    shared[(terminal, use.ikid)] = None
                    while len(shared) > HINTS:
                        shared.popitem(last=False)
                await refresh()
        raise StoreUnavailable(f"terminal {terminal}: contention did not settle")

    @staticmethod
    async def _send(
        cql: Cql, statements: list[tuple[Any, tuple[Any, ...]]]
    ) -> tuple[bool | None, Row]:
        """One statement alone, or a logged conditional batch on the terminal's partition."""
        if len(statements) == 1:
            return await cql.lwt(*statements[0])
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        for stmt, params in statements:
            batch.add(stmt, params)
        return await cql.lwt(batch, None)

    async def _taken(self, cql: Cql, sent: Sent, row: Row, now: float) -> None:
        """The STAN is taken: DuplicateTransmission, unless the claim is an orphan (its
        transaction never appeared, ORPHAN_S after the claim), which the caller takes over."""
        existing = str(row.get("transaction_id") or "")
        if existing == sent.transaction_id:
            raise DuplicateTransmission(existing)
        if float(row.get("created_at") or 0.0) > time.time() - ORPHAN_S:
            raise DuplicateTransmission(existing)
        found = await cql.serial(cql.q.tx_get, (existing,))
        if found is not None:
            raise DuplicateTransmission(existing)

    async def _release_sent(self, sent: Sent) -> None:
        """Give a STAN claim back (best effort) after a definite failure to write its row."""
        cql, q = await self._guard_cql()
        cql.spawn(cql.lwt(q["sent_release"], (sent.terminal_id, sent.name, sent.writer)))
