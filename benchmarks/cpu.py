"""CPU per authorization, and the switch's flame graph.

Why: the switch's CPU per authorization, not the network hops, sets payswitch's ceiling on two
cores (issue 19). Each phase already records every process's CPU seconds from /proc
(``procstat.CpuWindow``); this divides them by the requests the system answered in the phase,
so a figure is comparable across levels and runs whatever the throughput was.

The flame graph is py-spy (``py-spy record``) attached to the running switch for one extra
closed-loop phase at the peak's concurrency, *after* the measured levels: sampling slows the
process it samples, so no reported figure comes from the profiled phase.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.loadgen import GENERATOR_STATUSES

SAMPLE_RATE_HZ = 200  # py-spy samples per second: enough for a 10 s phase, cheap for the target


def answered(statuses: list[str]) -> int:
    """Requests the system under test answered (OK or an RPC error), not the generator's own."""
    return sum(1 for st in statuses if st not in GENERATOR_STATUSES)


def per_auth_ms(cpu: dict[str, Any], n: int) -> dict[str, float]:
    """CPU milliseconds per answered request for every process in ``cpu`` (a CpuWindow's)."""
    if n <= 0:
        return {}
    return {name: round(1000.0 * s / n, 3) for name, s in cpu.get("cpu_s", {}).items()}


def py_spy() -> str | None:
    """The py-spy binary: beside this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def start_profile(pid: int, svg: Path, duration_s: float) -> subprocess.Popen[bytes]:
    """py-spy recording ``pid`` for ``duration_s`` into ``svg`` (one stack per thread, so the
    event loop, the HSM threads and the store thread are told apart); the caller waits."""
    binary = py_spy()
    if binary is None:
        raise FileNotFoundError("py-spy not found (pip install py-spy)")
    return subprocess.Popen(  # noqa: S603 (our own py-spy, argv built here)
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(round(duration_s), 1)),
            "--rate",
            str(SAMPLE_RATE_HZ),
            "--threads",
            "--nonblocking",
            "--format",
            "flamegraph",
            "--output",
            str(svg),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def finish_profile(proc: subprocess.Popen[bytes], svg: Path, timeout_s: float) -> dict[str, Any]:
    """Wait for py-spy; what the report says about the flame graph."""
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"ran": False, "reason": "py-spy did not finish in time"}
    if proc.returncode != 0 or not svg.exists():
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return {"ran": False, "reason": f"py-spy exit {proc.returncode}: {tail[0]}"}
    return {"ran": True, "svg": str(svg)}
