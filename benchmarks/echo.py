"""The ceiling's servers: a bare echo and a bare forwarder, each its own process on uvloop.

    python -m benchmarks.echo --role echo --listen 127.0.0.1:P [--record FILE]
    python -m benchmarks.echo --role forward --listen 127.0.0.1:P --next 127.0.0.1:Q [--record FILE]

Both serve ``payswitch.v1.TerminalService/Authorize`` with the real message types, so requests
and answers have the sizes of a real authorization and the same generator drives them. The echo
answers a prebuilt, realistic ``AuthorizeResponse``; a forwarder parses the request and makes
one onward call with the caller's remaining deadline, nothing else (no logging, no state).

With ``--record`` each process keeps its handler time per idempotency key and writes them as
JSON when it stops (SIGTERM), so a forwarder's own added latency (its time minus the next
hop's) can be compared with the switch's, measured the same way from its logs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from pathlib import Path

import grpc
import orjson
import uvloop

from payswitch.v1 import common_pb2, terminal_pb2, terminal_pb2_grpc

MAX_RECORDS = 300_000
SERVER_OPTIONS = [("grpc.so_reuseport", 0)]


def sample_response() -> terminal_pb2.AuthorizeResponse:
    """What the switch answers for an approval, field for field (sizes matter, values not)."""
    return terminal_pb2.AuthorizeResponse(
        transaction_id="0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        response_code=common_pb2.RESPONSE_CODE_APPROVED,
        auth_code="A1B2C3",
        rrn="000000123456",
        stan=123456,
        amount=common_pb2.Money(minor_units=1250, currency="EUR"),
        scheme=common_pb2.CARD_SCHEME_VISA,
        masked_pan="411111******1111",
        acquirer_id="acq-alpha",
        message="approved",
    )


class _Recorder:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self.times: dict[str, float] = {}

    def add(self, key: str, started: float) -> None:
        if self.path is not None and len(self.times) < MAX_RECORDS:
            self.times[key] = round((time.perf_counter() - started) * 1000, 4)

    def dump(self, role: str) -> None:
        if self.path is not None:
            Path(self.path).write_bytes(orjson.dumps({"role": role, "ms": self.times}))


class Echo(terminal_pb2_grpc.TerminalServiceServicer):
    def __init__(self, recorder: _Recorder) -> None:
        self._answer = sample_response()
        self._rec = recorder

    async def Authorize(self, request, context):
        started = time.perf_counter()
        answer = self._answer
        self._rec.add(request.idempotency_key, started)
        return answer


class Forwarder(terminal_pb2_grpc.TerminalServiceServicer):
    def __init__(self, onward: str, recorder: _Recorder) -> None:
        self._channel = grpc.aio.insecure_channel(onward)
        self._stub = terminal_pb2_grpc.TerminalServiceStub(self._channel)
        self._rec = recorder

    async def Authorize(self, request, context):
        started = time.perf_counter()
        answer = await self._stub.Authorize(request, timeout=context.time_remaining())
        self._rec.add(request.idempotency_key, started)
        return answer

    async def close(self) -> None:
        await self._channel.close()


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    """Stop when the process that started us is gone, so no orphan keeps a port."""
    while not stop.is_set():
        if os.getppid() != parent:
            stop.set()
            return
        await asyncio.sleep(0.5)


async def serve(args: argparse.Namespace) -> None:
    recorder = _Recorder(args.record)
    servicer: Echo | Forwarder
    if args.role == "echo":
        servicer = Echo(recorder)
    else:
        servicer = Forwarder(args.next, recorder)
    server = grpc.aio.server(options=SERVER_OPTIONS)
    terminal_pb2_grpc.add_TerminalServiceServicer_to_server(servicer, server)
    host, _, _port = args.listen.rpartition(":")
    if host != "127.0.0.1":
        raise SystemExit("benchmarks.echo listens on 127.0.0.1 only")
    if server.add_insecure_port(args.listen) == 0:
        raise SystemExit(f"cannot listen on {args.listen}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_watch_parent(args.parent, stop)) if args.parent else None
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    await server.stop(0.5)
    if isinstance(servicer, Forwarder):
        await servicer.close()
    recorder.dump(args.role)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="benchmarks.echo", description=__doc__.splitlines()[0])
    p.add_argument("--role", choices=("echo", "forward"), required=True)
    p.add_argument("--listen", required=True, help="127.0.0.1:PORT")
    p.add_argument("--next", default=None, help="onward address (forwarders)")
    p.add_argument("--record", default=None, help="write handler times here on exit")
    p.add_argument("--parent", type=int, default=0, help="exit when this pid is gone")
    args = p.parse_args(argv)
    if args.role == "forward" and not args.next:
        p.error("--next is required for a forwarder")
    uvloop.run(serve(args))


if __name__ == "__main__":
    main()
