"""Named crash points: a process kills itself (SIGKILL) at the n-th pass through one of them.

The back office's steps must survive a crash anywhere (issue 17): a test or a campaign sets
``PAYSWITCH_CRASH_AT=<point>:<n>`` in one process's environment, the process dies with no
chance to flush or clean up at the n-th time it reaches ``crashpoint("<point>")``, and the
rerun must end with the same books and ledger as an uninterrupted run. A crash point names a
place *inside* a step (after some of its items, before the rest), so "in the middle" is exact
rather than a race against a timer.

Unset (the default), a crash point costs one dictionary lookup per call and does nothing. The
variable only makes the process that reads it kill itself, so it grants nothing a person who
can set a process's environment does not already have.
"""

from __future__ import annotations

import os
import signal
import sys

ENV = "PAYSWITCH_CRASH_AT"

_counts: dict[str, int] = {}
_target: tuple[str, int] | None = None
_read = False


def parse(spec: str) -> tuple[str, int]:
    """``"point:n"`` as (point, n); ValueError naming the problem otherwise."""
    point, sep, count = spec.rpartition(":")
    if not sep or not point or not count.isdigit() or int(count) < 1:
        raise ValueError(f"{ENV} must be <point>:<n> with n >= 1, not {spec!r}")
    return point, int(count)


def _armed() -> tuple[str, int] | None:
    global _target, _read
    if not _read:
        spec = os.environ.get(ENV, "")
        _target = parse(spec) if spec else None
        _read = True
    return _target


def crashpoint(point: str) -> None:
    """Die here (SIGKILL to this process) when ``PAYSWITCH_CRASH_AT`` names ``point`` and this
    is its n-th pass; otherwise do nothing."""
    target = _armed()
    if target is None or target[0] != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] == target[1]:
        sys.stderr.write(f"crashpoint {point}:{target[1]}: killing this process\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def reset() -> None:
    """Forget the counts and re-read the environment (unit tests)."""
    global _read
    _counts.clear()
    _read = False
