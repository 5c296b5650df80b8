"""CPU seconds per process and for the whole machine, read from /proc (no psutil needed).

Why: a load generator that runs out of CPU makes the system under test look slow. Every phase
records each process's CPU (all its threads) and the machine's total busy CPU, so the report
shows the generator's own share and how much CPU *other* work on the box took meanwhile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float | None:
    """utime + stime of ``pid`` (every thread) in seconds; None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy_s() -> float:
    """CPU seconds all cores spent not idle (user, system, irq, steal ...) since boot."""
    with open("/proc/stat") as f:
        parts = f.readline().split()
    ticks = [int(v) for v in parts[1:9]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / _TICK


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


@dataclass
class CpuWindow:
    """CPU used by named processes (and the machine) between ``start()`` and ``stop()``."""

    pids: dict[str, int]
    _before: dict[str, float] = field(default_factory=dict)
    _machine_before: float = 0.0

    def start(self) -> None:
        self._before = {n: v for n, p in self.pids.items() if (v := process_cpu_s(p)) is not None}
        self._machine_before = machine_busy_s()

    def stop(self, wall_s: float) -> dict[str, object]:
        """Per process CPU seconds and % of one core; ``other`` is the rest of the machine."""
        per: dict[str, float] = {}
        for name, pid in self.pids.items():
            after = process_cpu_s(pid)
            if after is not None and name in self._before:
                per[name] = round(after - self._before[name], 3)
        machine = machine_busy_s() - self._machine_before
        ours = sum(per.values())
        wall = max(wall_s, 1e-9)
        return {
            "wall_s": round(wall_s, 3),
            "cpu_s": per,
            "core_pct": {n: round(100 * v / wall, 1) for n, v in per.items()},
            "ours_cpu_s": round(ours, 3),
            "machine_busy_cpu_s": round(machine, 3),
            "other_cpu_s": round(max(machine - ours, 0.0), 3),
            "machine_capacity_cpu_s": round(wall * (os.cpu_count() or 1), 3),
        }
