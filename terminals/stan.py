"""System trace audit numbers (ISO 8583 field 11): 1..999999, wrapping, never reused in a day.

The switch declines a second (terminal, STAN, local date) with 94, so a terminal that restarts
must carry on after the STANs it already used. With a state file the counter reserves blocks
ahead of use: the file records the highest reserved sequence number (written atomically and
fsynced *before* any STAN of the block is handed out), and a restart continues after it. A
crash therefore skips at most one block of STANs and never repeats one. An advisory lock on a
sidecar file lets several processes (say, ``pos`` invocations) share one terminal's file:
each reserves its own disjoint block. A reservation is a small blocking write plus fsync; with
``block`` > 1 it happens once per block, so the event loop rarely notices it.

The counter is a monotonic sequence number; the STAN is that number folded into 1..999999.
Without a file the counter lives in memory and, unless told where to start, starts at a
random point so that a restarted in-memory terminal is unlikely to collide with its past.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import threading
from pathlib import Path

MAX_STAN = 999_999


def stan_of(seq: int) -> int:
    """Sequence number (1, 2, ...) to STAN, wrapping after 999999 back to 1."""
    return (seq - 1) % MAX_STAN + 1


class StanStateError(RuntimeError):
    """The state file is unreadable: refusing to guess, since a guess could repeat STANs."""


class StanCounter:
    """Hands out STANs; thread-safe. ``block`` is how many are reserved per file write."""

    def __init__(
        self, path: str | Path | None = None, *, start: int | None = None, block: int = 10
    ) -> None:
        if block < 1:
            raise ValueError("block must be at least 1")
        if start is not None and not 1 <= start <= MAX_STAN:
            raise ValueError("start must be a STAN, 1..999999")
        self._path = Path(path) if path is not None else None
        self._block = block
        self._lock = threading.Lock()
        if self._path is None:
            self._next = start if start is not None else secrets.randbelow(MAX_STAN) + 1
            self._limit: int | None = None  # in memory: no reservation needed
        else:
            self._start = start or 1  # first sequence number of a brand-new file
            self._next, self._limit = 1, 0  # nothing reserved yet: the first next() reserves

    @property
    def path(self) -> Path | None:
        return self._path

    def next(self) -> int:
        """The next STAN, reserving (and persisting) a new block first when needed."""
        with self._lock:
            if self._limit is not None and self._next > self._limit:
                self._next, self._limit = self._reserve()
            seq = self._next
            self._next += 1
            return stan_of(seq)

    def _reserve(self) -> tuple[int, int]:
        assert self._path is not None
        self._path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self._path.with_name(self._path.name + ".lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
            reserved = self._read()
            first = reserved + 1 if reserved is not None else self._start
            last = first + self._block - 1
            self._write(last)
        return first, last

    def _read(self) -> int | None:
        assert self._path is not None
        try:
            raw = self._path.read_text()
        except FileNotFoundError:
            return None
        try:
            reserved = json.loads(raw)["reserved"]
        except (ValueError, KeyError, TypeError):
            raise StanStateError(f"STAN state file {self._path} is corrupt") from None
        if not isinstance(reserved, int) or isinstance(reserved, bool) or reserved < 0:
            raise StanStateError(f"STAN state file {self._path} is corrupt")
        return reserved

    def _write(self, reserved: int) -> None:
        """Atomic replace plus fsync of file and directory: durable before first use."""
        assert self._path is not None
        tmp = self._path.with_name(self._path.name + ".tmp")
        with tmp.open("w") as fh:
            json.dump({"reserved": reserved}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._path)
        dir_fd = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
