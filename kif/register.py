"""The KIF's device register: which device (initial key ID) is assigned to which terminal.

An owner-only SQLite file of the KIF's own (``<hsm home>/kif/devices.db`` by default), never the
switch's store: the KIF runs away from the transaction host. A device is registered to one
terminal, once; the KIF injects an initial key only for a device registered to the terminal
asking for it. Initial key IDs are not secret (they travel in every KSN).

The audit file (``audit.log`` beside it, 0600, append only) gets one line per registration and
per injection: time, operator, terminal, initial key ID and the IK's KCV, never a key.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

IKID_HEX = re.compile(r"[0-9A-F]{16}")
TERMINAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
OPERATOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class RegisterError(ValueError):
    """Refused: unknown or foreign device, malformed id. Nothing was recorded."""


@dataclass(frozen=True, slots=True)
class Registration:
    ikid: str
    terminal_id: str
    operator: str
    registered_at: float


def _check(pattern: re.Pattern[str], value: str, name: str) -> str:
    if pattern.fullmatch(value) is None:
        raise RegisterError(f"{name} is malformed")
    return value


class DeviceRegister:
    """Devices assigned to terminals, in ``<directory>/devices.db``; audit in ``audit.log``."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory = directory
        self.audit_path = directory / "audit.log"
        db = directory / "devices.db"
        if not db.exists():
            os.close(os.open(db, os.O_WRONLY | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(db, isolation_level=None)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS devices (ikid TEXT PRIMARY KEY, terminal_id TEXT NOT NULL,"
            " operator TEXT NOT NULL, registered_at REAL NOT NULL)"
        )

    def close(self) -> None:
        self._db.close()

    def register(self, ikid: str, terminal_id: str, operator: str) -> Registration:
        """Assign a device to a terminal; a device assigned already (to anyone) is refused."""
        reg = Registration(
            _check(IKID_HEX, ikid, "initial key ID"),
            _check(TERMINAL_ID, terminal_id, "terminal_id"),
            _check(OPERATOR, operator, "operator"),
            time.time(),
        )
        try:
            self._db.execute(
                "INSERT INTO devices VALUES (?, ?, ?, ?)",
                (reg.ikid, reg.terminal_id, reg.operator, reg.registered_at),
            )
        except sqlite3.IntegrityError:
            raise RegisterError(f"device {ikid} is registered already") from None
        self.audit("register", operator=operator, terminal_id=terminal_id, ikid=ikid)
        return reg

    def lookup(self, ikid: str) -> Registration | None:
        row = self._db.execute(
            "SELECT ikid, terminal_id, operator, registered_at FROM devices WHERE ikid = ?",
            (ikid,),
        ).fetchone()
        return Registration(*row) if row is not None else None

    def all(self) -> list[Registration]:
        rows = self._db.execute(
            "SELECT ikid, terminal_id, operator, registered_at FROM devices ORDER BY registered_at"
        ).fetchall()
        return [Registration(*row) for row in rows]

    def assigned(self, ikid: str, terminal_id: str) -> Registration:
        """The registration of ``ikid`` if it is ``terminal_id``'s, else :class:`RegisterError`."""
        reg = self.lookup(_check(IKID_HEX, ikid, "initial key ID"))
        if reg is None:
            raise RegisterError(f"device {ikid} is not registered")
        if reg.terminal_id != terminal_id:
            raise RegisterError(f"device {ikid} is not registered to {terminal_id}")
        return reg

    def audit(self, event: str, **fields: str) -> None:
        """One JSON line, appended, owner-only. Callers pass ids and KCVs only."""
        line = json.dumps({"at": round(time.time(), 3), "event": event, **fields})
        fd = os.open(self.audit_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(line + "\n")
