"""Process helpers every party's process uses: the launcher's parent watch and addresses.

A node or switch started by ``payswitch-stack`` learns its launcher's pid from
``PAYSWITCH_PARENT_PID`` and stops once it is re-parented (the launcher died without stopping
it), so no orphan keeps a port. ``connect_address`` turns a listen address into one to dial.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import BinaryIO

from payswitch import logs

PARENT_PID_ENV = "PAYSWITCH_PARENT_PID"
PRIVATE_UMASK = 0o077

_log = logs.get("payswitch.process")


async def watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    """Set ``stop`` once the launcher that started us is gone (we were re-parented)."""
    while not stop.is_set():
        if os.getppid() != parent_pid:
            stop.set()
            with contextlib.suppress(OSError):  # our stdout pipe went with the launcher
                _log.warning("launcher gone, stopping")
            return
        await asyncio.sleep(1.0)


def private_files() -> None:
    """From now on every file this process (and any child it starts) creates is readable by
    its owner alone (umask 077): stores, books, logs, clearing files and reports hold
    transaction records, which nobody else on the host needs to read."""
    os.umask(PRIVATE_UMASK)


def open_private_log(path: Path) -> BinaryIO:
    """``path`` opened for appending, created owner-only (0600) whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return os.fdopen(fd, "ab", buffering=0)


def connect_address(listen: str) -> str:
    """Where to reach a server listening on ``listen`` from this host."""
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):  # noqa: S104 - we connect, not bind
        host = "127.0.0.1"
    return f"{host}:{port}"
