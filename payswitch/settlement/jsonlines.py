"""A JSON-lines file that becomes visible only when complete: the clearing file's and the
settlement report's writers share it (issue 17: both are written as streams).

Lines go to ``<path>`` with ``tmp_suffix`` until ``commit`` fsyncs and renames, so a crash
leaves only the temporary file, never one that looks complete under its real name."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class AtomicJsonLines:
    def __init__(self, path: Path, tmp_suffix: str, *, sort_keys: bool = False) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = path.with_suffix(tmp_suffix)
        self._fh = self._tmp.open("w", encoding="utf-8")
        self._sort_keys = sort_keys

    def write(self, doc: dict[str, Any]) -> None:
        self._fh.write(json.dumps(doc, sort_keys=self._sort_keys, separators=(",", ":")) + "\n")

    def commit(self) -> Path:
        """fsync, close, rename into place: the file is complete and visible under its name."""
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._tmp.replace(self.path)
        return self.path

    def abort(self) -> None:
        """Drop the unfinished file."""
        self._fh.close()
        self._tmp.unlink(missing_ok=True)
