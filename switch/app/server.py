"""Builds the switch process: store, card protection, connectors, pipeline, gRPC server with
health checking and reflection, the admin server and /metrics. ``Switch`` is also what
in-process tests start.

With ``[switch] tls`` the terminal port serves mTLS only (``payswitch.tls``: client certificate of
the terminal CA required), from the switch's own certificate folder (``--certs-dir``), else the
topology's ``certs_dir``, else ``.run/certs/switch``; that folder holds no CA key and no other
party's key. The admin port (``admin_listen``) is a second gRPC server, so terminal and admin
credentials never share a port; with ``[switch] tls`` off it is not opened at all (an anonymous
port that revokes terminals would be worse than none). With ``[network] tls`` the switch dials
the acquirers and runs the settlement calls with its network certificate from the same folder."""

from __future__ import annotations

from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from payswitch import tls, tracing
from payswitch.logs import get as get_logger
from payswitch.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    offline_pb2,
    offline_pb2_grpc,
    terminal_pb2,
    terminal_pb2_grpc,
)
from payswitch.world.topology import Topology
from switch.api import offline as offline_api
from switch.api.admin import AdminService
from switch.api.decoding import MalformedRequests
from switch.api.terminal import TerminalService
from switch.backoffice.settlement.scheduler import CutoffScheduler
from switch.cardsec.protector import CardProtector
from switch.cardsec.stipfiles import StandInVerifier, StipFiles
from switch.core import metrics
from switch.core.admission import Admission
from switch.core.concurrency import LimitSettings
from switch.core.dcc import DccDesk
from switch.core.idempotency import IdempotencyGuard
from switch.core.registry import TerminalRegistry
from switch.core.sequences import BlockSequence
from switch.pipeline import Pipeline
from switch.recovery.advice import Adviser
from switch.recovery.reversals import Reverser
from switch.recovery.saf import SafQueue
from switch.risk.engine import RiskEngine
from switch.routing.breakers import Breakers
from switch.routing.connectors import Connectors
from switch.routing.router import Router
from switch.routing.standin import StandIn
from switch.services import Services
from switch.store.base import Store

_log = get_logger("switch.app.server")

# Terminal requests are small; anything near this is malformed or hostile.
MAX_MESSAGE_BYTES = 64 * 1024
DEFAULT_CERTS_DIR = Path(".run/certs/switch")


def _host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host or "127.0.0.1", int(port)


class Switch:
    def __init__(
        self,
        topology: Topology,
        store: Store,
        protector: CardProtector,
        listen: str | None = None,
        *,
        certs_dir: str | Path | None = None,
        tls_on: bool | None = None,
        admin_listen: str | None = None,
        metrics_listen: str | None = None,
    ) -> None:
        self.topology = topology
        sw = topology.switch
        self.listen = listen or sw.listen
        self.tls = sw.tls if tls_on is None else tls_on
        self.certs_dir = Path(certs_dir or sw.certs_dir or DEFAULT_CERTS_DIR)
        self.admin_listen = sw.admin_listen if admin_listen is None else admin_listen
        self.metrics_listen = sw.metrics_listen if metrics_listen is None else metrics_listen
        # Read now: a switch without its network certificate does not start (fail closed).
        self.network_credentials = (
            tls.network_client_credentials(self.certs_dir) if topology.network.tls else None
        )
        breakers = Breakers((a.id for a in topology.acquirers), topology.breaker)
        connectors = Connectors(topology, breakers, self.network_credentials)
        router = Router(topology, breakers)
        saf = SafQueue(store, topology.saf)
        reverser = Reverser(store, connectors, saf)
        registry = TerminalRegistry(topology, store)
        # The issuers' stand-in files, read and MAC-checked every [standin] refresh_s.
        self.stip_files = StipFiles(
            topology.standin, tuple(i.id for i in topology.issuers), protector
        )
        verifier = StandInVerifier(
            self.stip_files, tuple((i.id, i.bins) for i in topology.issuers), protector
        )
        self.services = Services(
            config=topology.switch,
            store=store,
            guard=IdempotencyGuard(store, abandoned_after_s=topology.switch.abandoned_key_s),
            protector=protector,
            registry=registry,
            router=router,
            connectors=connectors,
            reverser=reverser,
            rrns=BlockSequence(store, "rrn"),
            breakers=breakers,
            standin=StandIn(topology.standin, store, verifier=verifier),
            saf=saf,
            settlement=topology.settlement,
            dcc=DccDesk.from_topology(topology),
            admission=Admission(
                registry,
                tls=self.tls,
                max_in_flight=sw.max_in_flight,
                rate_per_s=sw.terminal_rate_per_s,
                burst=sw.terminal_burst,
                limits=LimitSettings.of(sw),
            ),
        )
        # Reversals and advices take their slots from the bounded background share.
        saf.share(self.services.gate.in_flight.gate)
        # The ADVICE handler of the same queue; its safety-net sweep runs under the recovery
        # lease, as the same lease owner as the reversals' sweep.
        self.adviser = Adviser(
            topology,
            store,
            connectors,
            router,
            protector,
            saf,
            owner=getattr(reverser, "_owner", None),
        )
        self.pipeline = Pipeline(self.services)
        self.server: grpc.aio.Server | None = None
        self.admin_server: grpc.aio.Server | None = None
        self.port = 0
        self.admin_port = 0
        self._health = health.aio.HealthServicer()
        self.cutoff = CutoffScheduler(store, topology, credentials=self.network_credentials)

    async def start(self) -> None:
        # Fail closed: without its keys the switch could only decline (or worse), so it does
        # not start at all.
        await self.services.protector.check_keys(tuple(a.id for a in self.topology.acquirers))
        await self.services.store.open()
        if self.topology.risk.enabled:  # a live rule set that does not load: no start
            self.services.risk = await RiskEngine.open(
                self.topology.risk,
                self.services.store,
                self.topology.terminal_countries(),
                self.topology.source,
            )
            self.services.risk.start()
        await self.services.registry.refresh()  # revocations known before the first request
        self.services.registry.start()
        server = grpc.aio.server(
            interceptors=[MalformedRequests(), *tracing.server_interceptors()],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        terminal_pb2_grpc.add_TerminalServiceServicer_to_server(
            TerminalService(self.services, self.pipeline), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names: tuple[str, ...] = (
            terminal_pb2.DESCRIPTOR.services_by_name["TerminalService"].full_name,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        )
        # Offline payments (issue 13), trust from <run dir>/offline-trust.json.
        offline = offline_api.build(
            self.services.store,
            Path(self.topology.standin.files_dir).parent,
            tls_on=self.tls,
            topology=self.topology,
            network_credentials=self.network_credentials,
            saf=self.services.saf,
        )
        offline_pb2_grpc.add_OfflineServiceServicer_to_server(offline, server)
        names += (offline_pb2.DESCRIPTOR.services_by_name["OfflineService"].full_name,)
        reflection.enable_server_reflection(names, server)
        if self.tls:
            creds = tls.terminal_server_credentials(self.certs_dir)
            self.port = server.add_secure_port(self.listen, creds)
        else:
            self.port = server.add_insecure_port(self.listen)
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {self.listen}")
        # Recovery before the first terminal call: a restarted process must not serve while its
        # sweep may still take a request of its own for one its killed predecessor left, and a
        # sweep that fails (store down, disk full) ends the process before any call is in it
        # (fault campaign seeds 2004 and 1014). Calls that arrive meanwhile wait on the bound
        # port within their deadline.
        recovered = await self.services.reverser.scan()
        await server.start()
        self.server = server
        if self.network_credentials is None:
            _log.warning(
                "PLAINTEXT_NETWORK",
                detail="[network] tls = false: the hops to the acquirers and the settlement "
                "calls are unauthenticated and unencrypted; for tests and benchmarks only",
            )
        if self.admin_listen and self.tls:
            await self._start_admin()
        elif self.admin_listen:
            _log.warning(
                "admin_port_not_opened",
                listen=self.admin_listen,
                detail="[switch] tls = false: the admin API is served over mTLS only",
            )
        if self.metrics_listen:
            metrics.serve(*_host_port(self.metrics_listen))
        self.services.reverser.start()
        self.services.connectors.warm()
        if self.topology.standin.enabled:
            await self.stip_files.refresh()
            self.stip_files.start()
        self.adviser.start()
        if self.topology.settlement.auto_close:
            self.cutoff.start()
        for name in ("", names[0]):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        _log.info(
            "serving",
            listen=self.listen,
            port=self.port,
            tls=self.tls,
            admin_port=self.admin_port,
            metrics=self.metrics_listen,
            recovered=recovered,
        )

    async def _start_admin(self) -> None:
        """The AdminService on its own server; ``saf``/``breakers`` when the switch has them."""
        # A body that is not protobuf: INVALID_ARGUMENT, as on the terminal port (the fuzz test
        # found the admin port answering UNKNOWN).
        server = grpc.aio.server(
            options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)],
            interceptors=[MalformedRequests()],
        )
        admin_pb2_grpc.add_AdminServiceServicer_to_server(
            AdminService(
                self.services.registry,
                getattr(self.services, "saf", None),
                getattr(self.services, "breakers", None),
                tls_on=self.tls,
                devices=self.services.store,
                risk=self.services.store if self.topology.risk.enabled else None,
            ),
            server,
        )
        reflection.enable_server_reflection(
            (admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,), server
        )
        creds = tls.admin_server_credentials(self.certs_dir)
        self.admin_port = server.add_secure_port(self.admin_listen, creds)
        if self.admin_port == 0:
            raise RuntimeError(f"cannot listen on {self.admin_listen}")
        await server.start()
        self.admin_server = server

    async def stop(self, grace: float = 2.0) -> None:
        if self.admin_server is not None:
            await self.admin_server.stop(0)
        if self.server is not None:
            await self._health.enter_graceful_shutdown()
            await self.server.stop(grace)
        await self.cutoff.close()
        await self.services.registry.close()
        await self.adviser.close()
        await self.stip_files.close()
        await self.services.reverser.close()
        if self.services.risk is not None:
            await self.services.risk.close()
        await self.services.connectors.close()
        await self.services.store.close()
