"""Server bootstrap shared by every node: grpc.aio server, health, reflection, shutdown.

Health reports SERVING only once the node's own start-up (books opened, channels made) is
done and the port is bound, so a launcher that waits for SERVING waits for a usable node.
With mTLS (``NodeTls``) the port takes only clients of the network CA and ``network.authz``
checks each caller's identity per method; in plaintext mode the node says so loudly at start.
Port reuse is switched off: gRPC enables SO_REUSEPORT by default on Linux, which would let a
stale node from an earlier run share the port silently instead of failing loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from network import control
from network.authz import CallerCheck
from network.transport import NodeTls, warn_plaintext
from payswitch import logs, tracing
from payswitch.process import PARENT_PID_ENV, watch_parent
from payswitch.v1 import control_pb2_grpc
from payswitch.world.topology import TopologyError

_SERVER_OPTIONS = [
    ("grpc.so_reuseport", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
]
_LOOPBACK = {"127.0.0.1", "localhost"}
# Set by the launcher to its own pid; see run_until_signal.
_log = logs.get("network.server")


class NodeApp(Protocol):
    """One node's services, built inside the running event loop."""

    node_id: str
    listen: str
    service_names: tuple[str, ...]

    def add_to(self, server: grpc.aio.Server) -> None: ...

    async def close(self) -> None: ...


def bind_address(listen: str) -> str:
    """``host:port`` from the topology, bound on 127.0.0.1 only."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise TopologyError(f"listen address {listen!r} is not host:port")
    if host not in _LOOPBACK:
        raise TopologyError(f"listen address {listen!r}: network nodes listen on 127.0.0.1 only")
    return f"127.0.0.1:{port}"


class NodeServer:
    def __init__(self, app: NodeApp, security: NodeTls) -> None:
        self.app = app
        self.security = security
        # The caller's identity first: a refused caller makes no span.
        interceptors = [CallerCheck()] if security.on else []
        interceptors += tracing.server_interceptors()
        self._server = grpc.aio.server(interceptors=interceptors, options=_SERVER_OPTIONS)
        self._health = health.aio.HealthServicer()
        self.port = 0

    async def start(self) -> int:
        """Bind, start and report SERVING; returns the bound port."""
        app = self.app
        app.add_to(self._server)
        names = app.service_names
        hop = getattr(app, "hop", None)
        if hop is not None:  # runtime fault control, a test/sim facility (network.control)
            servicer = control.NodeControlServicer(hop.control)
            control_pb2_grpc.add_NodeControlServiceServicer_to_server(servicer, self._server)
            names = (*names, control.SERVICE_NAME)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (*names, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        address = bind_address(app.listen)
        try:
            if self.security.server is not None:
                self.port = self._server.add_secure_port(address, self.security.server)
            else:
                warn_plaintext(app.node_id)
                self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"{app.node_id}: cannot listen on {address}: {exc}") from None
        await self._server.start()
        for name in ("", *app.service_names):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        _log.info("serving", listen=address, services=list(app.service_names), tls=self.security.on)
        return self.port

    async def stop(self, grace: float = 1.0) -> None:
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)
        await self.app.close()
        with contextlib.suppress(OSError):  # stdout may be a pipe nobody reads any more
            _log.info("stopped")


async def run_until_signal(app: NodeApp, security: NodeTls) -> None:
    """Serve until SIGTERM or SIGINT, then drain in-flight calls briefly and close.

    Started by ``payswitch-stack`` (``PAYSWITCH_PARENT_PID`` set), the node also stops when
    the launcher dies without stopping it (kill -9 of the launcher, a crashed test run), so
    no orphan keeps a port.
    """
    server = NodeServer(app, security)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    parent = os.environ.get(PARENT_PID_ENV, "")
    watcher = asyncio.create_task(watch_parent(int(parent), stop)) if parent.isdigit() else None
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    await server.stop()
