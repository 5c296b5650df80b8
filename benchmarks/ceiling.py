"""Start and stop the ceiling's processes: one bare echo, or a chain of bare forwarders ending in
an echo, each on a free 127.0.0.1 port; then read what each recorded.

``hops`` counts gRPC calls on the path: 1 is terminal -> echo; 4 is terminal -> forwarder ->
forwarder -> forwarder -> echo, as many hops as terminal -> switch -> acquirer -> scheme ->
issuer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import orjson

from payswitch.world.ports import free_ports

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class _Proc:
    name: str
    address: str
    record: Path
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class Chain:
    hops: int
    work_dir: Path
    procs: list[_Proc] = field(default_factory=list)

    @property
    def entry(self) -> str:
        return self.procs[0].address

    def pids(self) -> dict[str, int]:
        return {p.name: p.proc.pid for p in self.procs if p.proc is not None}

    def start(self, timeout: float = 15.0) -> Chain:
        if self.hops < 1:
            raise ValueError("a chain has at least one hop")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        ports = free_ports(self.hops)
        names = [f"fwd{i + 1}" for i in range(self.hops - 1)] + ["echo"]
        self.procs = [
            _Proc(n, f"127.0.0.1:{p}", self.work_dir / f"{n}.json")
            for n, p in zip(names, ports, strict=True)
        ]
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        try:
            # Echo first, then forwarders from the far end, so each onward address exists.
            for i in reversed(range(self.hops)):
                p = self.procs[i]
                argv = [sys.executable, "-m", "benchmarks.echo", "--listen", p.address]
                argv += ["--record", str(p.record), "--parent", str(os.getpid())]
                if i == self.hops - 1:
                    argv += ["--role", "echo"]
                else:
                    argv += ["--role", "forward", "--next", self.procs[i + 1].address]
                log = (self.work_dir / f"{p.name}.log").open("wb")
                p.proc = subprocess.Popen(  # noqa: S603 - our interpreter and module, no shell
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
                )
                log.close()
            for p in self.procs:
                with grpc.insecure_channel(p.address) as ch:
                    grpc.channel_ready_future(ch).result(timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 5.0) -> dict[str, dict[str, float]]:
        """SIGTERM every process (entry first), wait, and return each one's recorded times."""
        for p in self.procs:
            if p.proc is not None and p.proc.poll() is None:
                p.proc.send_signal(signal.SIGTERM)
        for p in self.procs:
            if p.proc is None:
                continue
            try:
                p.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait(timeout=timeout)
        records: dict[str, dict[str, float]] = {}
        for p in self.procs:
            try:
                data: dict[str, Any] = orjson.loads(p.record.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue
            records[p.name] = data.get("ms", {})
        return records

    def __enter__(self) -> Chain:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
