"""Crash points: a child process dies by SIGKILL at exactly the n-th pass, and not before."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from payswitch import crashpoint

_CHILD = """
import sys
from payswitch.crashpoint import crashpoint
for i in range(1, 6):
    crashpoint("other")
    crashpoint("step.item")
    print(i, flush=True)
"""


def _run(spec: str | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    if spec is not None:
        env[crashpoint.ENV] = spec
    return subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=30
    )


def test_the_nth_pass_kills_the_process() -> None:
    done = _run("step.item:3")
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["1", "2"]  # passes 1 and 2 went on, pass 3 died
    assert "crashpoint step.item:3" in done.stderr


def test_unset_or_other_point_does_nothing() -> None:
    assert _run(None).stdout.split() == ["1", "2", "3", "4", "5"]
    assert _run("elsewhere:1").returncode == 0


@pytest.mark.parametrize("bad", ["nocount", "x:0", "x:-1", ":3", "x:y"])
def test_bad_spec_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=crashpoint.ENV):
        crashpoint.parse(bad)
