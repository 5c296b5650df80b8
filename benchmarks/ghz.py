"""An independent load generator beside ours: ghz (Go) against the switch's Authorize.

Why: if our Python generator were the bottleneck or measured wrongly, a Go client on the same
box, at the same concurrency, against the same running switch, would disagree. ghz reads the
API from ``proto/`` (import path ``proto``). A template with ``{{.RequestNumber}}`` cannot make
the requests: each carries card data under a fresh DUKPT key and a MAC over its STAN and
idempotency key. So the requests are prebuilt by our secure-element simulator for ghz's own
terminal (``world.GHZ_TERMINAL``) and handed over as a JSON array, which ghz sends round robin
by request number: with ``--total`` equal to its length, each exactly once.

Install: ``benchmarks/install_ghz.sh`` (``go install``; lands in ~/go/bin). Without ghz the
report says so and everything else still runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from benchmarks import stats
from benchmarks.procstat import CpuWindow
from benchmarks.traffic import APPROVALS, Fleet
from payswitch.v1 import terminal_pb2

REPO_ROOT = Path(__file__).resolve().parents[1]
PROTO = "proto/payswitch/v1/terminal.proto"
METHOD = "payswitch.v1.TerminalService/Authorize"


def find_ghz(explicit: str | None = None) -> Path | None:
    """``--ghz PATH``, else ghz on PATH, else ~/go/bin/ghz (where go install puts it)."""
    candidates = [explicit] if explicit else [shutil.which("ghz"), str(Path.home() / "go/bin/ghz")]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return Path(c)
    return None


def write_data(requests: Sequence[terminal_pb2.AuthorizeRequest], path: Path) -> None:
    """The requests as the JSON array ghz sends round robin by request number (so with
    ``--total`` equal to the array's length each is sent exactly once)."""
    docs = [json_format.MessageToDict(r, preserving_proto_field_name=True) for r in requests]
    path.write_text(json.dumps(docs))


def _wait_rusage(proc: subprocess.Popen[bytes], timeout_s: float) -> float:
    """Wait for ``proc`` (bounded; killed past the bound) and return its CPU seconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.05)


def run(
    ghz: Path,
    address: str,
    *,
    data_file: Path,
    total: int,
    concurrency: int,
    connections: int,
    skip_first: int,
    deadline_s: float,
    timeout_s: float,
    out_dir: Path,
) -> dict[str, Any]:
    """Run ghz once over ``total`` prebuilt requests (``write_data``); its own summary plus
    percentiles we compute from its per-request details."""
    out_path = out_dir / "ghz.json"
    argv = [
        str(ghz),
        "--insecure",
        "--proto",
        PROTO,
        "--import-paths",
        "proto",
        "--call",
        METHOD,
        "--data-file",
        str(data_file),
        "--concurrency",
        str(concurrency),
        "--connections",
        str(min(connections, concurrency)),
        "--total",
        str(total),
        "--skipFirst",
        str(skip_first),
        "--timeout",
        f"{int(deadline_s * 1000)}ms",
        "--format",
        "json",
        "--output",
        str(out_path),
        address,
    ]
    with (out_dir / "ghz.log").open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - fixed binary and arguments, no shell
            argv, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        t0 = time.perf_counter()
        cpu_s = _wait_rusage(proc, timeout_s)
        wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out_path.is_file():
        tail = (out_dir / "ghz.log").read_text(errors="replace")[-600:]
        return {"ran": False, "reason": f"ghz exited with {proc.returncode}: {tail.strip()}"}
    return summarise(json.loads(out_path.read_text()), cpu_s, wall, concurrency)


def summarise(doc: dict[str, Any], cpu_s: float, wall_s: float, concurrency: int) -> dict[str, Any]:
    details = doc.get("details") or []
    ok_ms = [d["latency"] / 1e6 for d in details if d.get("status") == "OK"]
    own = {
        f"p{int(d['percentage'])}": round(d["latency"] / 1e6, 3)
        for d in doc.get("latencyDistribution") or []
    }
    return {
        "ran": True,
        "concurrency": concurrency,
        "count": doc.get("count"),
        "rps": round(float(doc.get("rps", 0.0)), 1),
        "latency_ms": stats.summary(ok_ms),
        "ghz_latency_distribution_ms": own,
        "ghz_average_ms": round(doc.get("average", 0) / 1e6, 3),
        "ghz_slowest_ms": round(doc.get("slowest", 0) / 1e6, 3),
        "status_codes": doc.get("statusCodeDistribution") or {},
        "errors": doc.get("errorDistribution") or {},
        "ghz_cpu_s": round(cpu_s, 3),
        "ghz_core_pct": round(100 * cpu_s / max(wall_s, 1e-9), 1),
        "wall_s": round(wall_s, 3),
    }


def latencies_ms(path: Path) -> list[float]:
    """Every successful request's latency from ghz's JSON output (for the CDF plot)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [d["latency"] / 1e6 for d in doc.get("details") or [] if d.get("status") == "OK"]


def against_switch(
    ghz: Path,
    address: str,
    fleet: Fleet,
    *,
    total: int,
    concurrency: int,
    connections: int,
    deadline_s: float,
    timeout_s: float,
    server_pids: dict[str, int],
) -> dict[str, Any]:
    """Build ``total`` approvals on the fleet's (single) terminal, run ghz over them once, and
    add the servers' CPU over the run and the latency CDF (blocking)."""
    skip = min(total // 10, 500)  # ghz's own warm-up, excluded from its figures
    terminal = fleet.terminals[0][0]
    with tempfile.TemporaryDirectory(prefix="payswitch-ghz-") as tmp:
        folder = Path(tmp)
        write_data(
            [
                fleet.request(terminal, APPROVALS[0], fleet.next_key(), fleet.next_stan(terminal))
                for _ in range(total)
            ],
            folder / "data.json",
        )
        cpu = CpuWindow(server_pids)
        cpu.start()
        t0 = time.perf_counter()
        result = run(
            ghz,
            address,
            data_file=folder / "data.json",
            total=total,
            concurrency=concurrency,
            connections=connections,
            skip_first=skip,
            deadline_s=deadline_s,
            timeout_s=timeout_s,
            out_dir=folder,
        )
        result["cpu"] = cpu.stop(time.perf_counter() - t0)
        result["skip_first"] = skip
        result["cdf"] = stats.cdf_points(latencies_ms(folder / "ghz.json"))
    return result
