"""What terminal mTLS costs per request: Echo round trips against one switch, plaintext vs
mTLS (``python -m benchmarks.tls_cost``; a throwaway SoftHSM token and two stacks on free
ports). Sequential median latency, 16-way throughput, and a new connection's first call
(the TLS handshake). Bounded: a few thousand calls per mode."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import grpc

from hsm.testing import process_test_config
from payswitch.v1 import terminal_pb2, terminal_pb2_grpc
from payswitch.world.ports import with_free_ports, write_topology
from stack.launcher import Stack

DEFAULT_TOPOLOGY = Path(__file__).resolve().parents[1] / "topology" / "default.toml"


def _channel(stack: Stack) -> grpc.aio.Channel:
    address = stack.address(stack.topology.switch.id)
    creds = stack.terminal_credentials("T-0001")
    return grpc.aio.secure_channel(address, creds) if creds else grpc.aio.insecure_channel(address)


async def measure(stack: Stack, calls: int) -> dict[str, float]:
    req = terminal_pb2.EchoRequest(terminal_id="T-0001", message="x")
    channel = _channel(stack)
    stub = terminal_pb2_grpc.TerminalServiceStub(channel)
    for _ in range(200):
        await stub.Echo(req, timeout=2)
    lat = []
    for _ in range(calls):
        t = time.perf_counter()
        await stub.Echo(req, timeout=2)
        lat.append(time.perf_counter() - t)

    async def worker() -> None:
        for _ in range(calls // 16):
            await stub.Echo(req, timeout=2)

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(16)))
    rate = (calls // 16 * 16) / (time.perf_counter() - t)
    await channel.close()
    first = []
    for _ in range(30):
        t = time.perf_counter()
        fresh = _channel(stack)
        await terminal_pb2_grpc.TerminalServiceStub(fresh).Echo(req, timeout=2)
        first.append(time.perf_counter() - t)
        await fresh.close()
    return {
        "echo_median_us": statistics.median(lat) * 1e6,
        "rps_16": rate,
        "new_connection_ms": statistics.median(first) * 1e3,
    }


def _stack(base: Path, tls: bool) -> Stack:
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    doc["switch"]["tls"] = tls
    run = base / ("tls" if tls else "plain")
    path = run / "topology.toml"
    write_topology(with_free_ports(doc), path)
    subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "payswitch.ceremony", "keys", "--topology", str(path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return Stack(path, run).start()


async def main_async(calls: int, rounds: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="tls-cost-"))
    process_test_config(base / "softhsm")
    for _ in range(rounds):
        for tls in (False, True):
            stack = await asyncio.to_thread(_stack, base, tls)
            try:
                r = await measure(stack, calls)
            finally:
                await asyncio.to_thread(stack.stop)
            print(
                f"{'mtls ' if tls else 'plain'} echo median {r['echo_median_us']:.0f} us, "
                f"16-way {r['rps_16']:.0f}/s, new connection {r['new_connection_ms']:.2f} ms",
                flush=True,
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    asyncio.run(main_async(min(args.calls, 20_000), min(args.rounds, 5)))


if __name__ == "__main__":
    main()
