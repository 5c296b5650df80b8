"""Builds the switch process: store, card protection, connectors, pipeline, gRPC server with
health checking and reflection. ``Switch`` is also what in-process tests start."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from network.topology import Topology
from payswitch.logs import get as get_logger
from payswitch.v1 import terminal_pb2, terminal_pb2_grpc
from switch.cardsec import CardProtector
from switch.connectors import Connectors
from switch.idempotency import IdempotencyGuard
from switch.pipeline import Pipeline
from switch.pipeline.services import Services
from switch.registry import TerminalRegistry
from switch.reversals import Reverser
from switch.routing import Router
from switch.sequences import BlockSequence
from switch.service import TerminalService
from switch.store.base import Store

_log = get_logger("switch.server")

# Terminal requests are small; anything near this is malformed or hostile.
MAX_MESSAGE_BYTES = 64 * 1024


class Switch:
    def __init__(
        self,
        topology: Topology,
        store: Store,
        protector: CardProtector,
        listen: str | None = None,
    ) -> None:
        self.topology = topology
        self.listen = listen or topology.switch.listen
        connectors = Connectors(topology)
        self.services = Services(
            config=topology.switch,
            store=store,
            guard=IdempotencyGuard(store),
            protector=protector,
            registry=TerminalRegistry(topology),
            router=Router(topology),
            connectors=connectors,
            reverser=Reverser(store, connectors),
            rrns=BlockSequence(store, "rrn"),
        )
        self.pipeline = Pipeline(self.services)
        self.server: grpc.aio.Server | None = None
        self.port = 0
        self._health = health.aio.HealthServicer()

    async def start(self) -> None:
        # Fail closed: without its keys the switch could only decline (or worse), so it does
        # not start at all.
        await self.services.protector.check_keys(tuple(a.id for a in self.topology.acquirers))
        await self.services.store.open()
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ]
        )
        terminal_pb2_grpc.add_TerminalServiceServicer_to_server(
            TerminalService(self.services, self.pipeline), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = (
            terminal_pb2.DESCRIPTOR.services_by_name["TerminalService"].full_name,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)
        self.port = server.add_insecure_port(self.listen)
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {self.listen}")
        await server.start()
        self.server = server
        recovered = await self.services.reverser.scan()
        self.services.reverser.start()
        for name in ("", names[0]):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        _log.info("serving", listen=self.listen, port=self.port, recovered=recovered)

    async def stop(self, grace: float = 2.0) -> None:
        if self.server is not None:
            await self._health.enter_graceful_shutdown()
            await self.server.stop(grace)
        await self.services.reverser.close()
        await self.services.connectors.close()
        await self.services.store.close()
