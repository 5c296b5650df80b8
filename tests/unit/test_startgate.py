"""A process started held (payswitch/startgate.py) goes on only on its launcher's go."""

from __future__ import annotations

import os
import subprocess
import sys

from payswitch import startgate

_CHILD = "from payswitch import startgate; startgate.wait_for_go(); print('went')"


def _run(stdin: bytes, held: bool = True) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    env.pop(startgate.GATE_ENV, None)
    if held:
        env[startgate.GATE_ENV] = "1"
    return subprocess.run(
        [sys.executable, "-c", _CHILD], input=stdin, capture_output=True, env=env, timeout=30
    )


def test_held_goes_on_at_go_and_exits_quietly_without() -> None:
    assert _run(startgate.GO).stdout == b"went\n"
    quiet = _run(b"")  # the launcher closed the pipe (stopped, died) without a go
    assert (quiet.returncode, quiet.stdout) == (0, b"")
    assert _run(b"x").stdout == b""


def test_not_held_goes_on_at_once() -> None:
    assert _run(b"", held=False).stdout == b"went\n"
