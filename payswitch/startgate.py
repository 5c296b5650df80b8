"""A process started ahead of time, held after its imports until its launcher says go.

A planned restart (tests/faults: a node down for a while, a switch killed and brought back)
need not pay the interpreter's start and the imports (0.3-0.5 s of CPU, more on a busy
machine) after the outage: the launcher starts the new process when the outage begins, with
``PAYSWITCH_START_GATE=1`` and a pipe on stdin; the process imports its code, then reads
stdin before it touches anything (port, HSM, store, books): one ``g`` byte and it goes on,
anything else (the launcher closed the pipe, stopped or died) and it exits quietly. It is the
node's own process from the start, so a kill still kills the node itself.
"""

from __future__ import annotations

import os
import sys

GATE_ENV = "PAYSWITCH_START_GATE"
GO = b"g"


def wait_for_go() -> None:
    """Block until the launcher's go when started held; return at once otherwise."""
    if os.environ.pop(GATE_ENV, "") != "1":
        return
    if sys.stdin.buffer.read(1) != GO:
        sys.exit(0)  # never released: the outage's restart was given up
