"""A small filesystem of its own for the switch's SQLite store, which a seed fills up and frees
(``plan.Action.FILL_DISK`` / ``FREE_DISK``): a real ENOSPC under SQLite's writes, not a mock.

A tmpfs mounted under the seed's run directory (mounting needs root: the harness runs the disk
faults only as root and says so otherwise). Filling writes a filler file until the kernel
answers ENOSPC; freeing deletes it. On unmount the store's files are copied back into the run
directory first, so a failing seed keeps them.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

SIZE_MB = 64
_CHUNKS = (1 << 20, 1 << 16, 1 << 12, 1 << 9)


def can_mount() -> bool:
    return os.geteuid() == 0


class SmallDisk:
    def __init__(self, path: Path, size_mb: int = SIZE_MB) -> None:
        self.path = path
        self.size_mb = size_mb
        self.filler = path / "filler"
        self.mounted = False

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={self.size_mb}m,mode=0700",
                "tmpfs",
                str(self.path),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        self.mounted = True

    def fill(self) -> int:
        """Take every free byte; returns how many were taken."""
        taken = 0
        with self.filler.open("ab", buffering=0) as f:
            for size in _CHUNKS:
                block = b"\0" * size
                while True:
                    try:
                        written = f.write(block) or 0
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
                    taken += written
        return taken

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self, keep_in: Path) -> None:
        """Copy the store's files to ``keep_in``, then unmount (the switch must be stopped)."""
        if not self.mounted:
            return
        self.free()
        for f in self.path.glob("switch.db*"):
            shutil.copy2(f, keep_in / f.name)
        subprocess.run(["umount", str(self.path)], check=True, capture_output=True, timeout=30)
        self.mounted = False
