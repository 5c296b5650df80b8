"""Auto-close at the configured cut-off (``[settlement] cutoff``, UTC) and the manual trigger.

Every switch process runs this task; the run itself happens only in the process that takes
the store lease ``settlement-run`` (300 s, renewed by its own holder), so with many switch
processes on one store one of them closes the batches and clears. A process that misses the
lease skips that cut-off. ``trigger`` runs a cut-off now (the switch runs it on SIGUSR1: the
operator's manual close), under the same lease and one at a time per process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence

import grpc

from payswitch.logs import get as get_logger
from payswitch.world.topology import Topology
from switch.backoffice.ledger.ledger import Ledger, scheme_rates
from switch.backoffice.settlement.run import CutoffResult, SettlementHooks, run_cutoff
from switch.store.base import Store

_log = get_logger("switch.backoffice.settlement")

LEASE = "settlement-run"
LEASE_TTL_S = 300.0


def next_cutoff(now: float, cutoff: dt.time) -> float:
    """The first cut-off instant (UTC) strictly after ``now``."""
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    at = dt.datetime.combine(today, cutoff, tzinfo=dt.UTC).timestamp()
    return at if at > now else at + 86_400


def switch_hooks(store: Store, topology: Topology) -> tuple[SettlementHooks, ...]:
    """The hooks a switch's cut-off runs with: the ledger posts each presentment and
    settlement (``switch.backoffice.ledger``). ``payswitch-backoffice cutoff`` uses the same."""
    return (Ledger(store, topology.fees, scheme_rates(topology)),)


class CutoffScheduler:
    def __init__(
        self,
        store: Store,
        topology: Topology,
        *,
        clock: Callable[[], float] = time.time,
        hooks: Sequence[SettlementHooks] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._store = store
        self._credentials = credentials  # the switch's network identity (run_cutoff)
        self._hooks = switch_hooks(store, topology) if hooks is None else tuple(hooks)
        self._topology = topology
        self._clock = clock
        self._owner = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._manual: set[asyncio.Task[None]] = set()
        self.last: CutoffResult | None = None

    async def run_once(self, at: float | None = None) -> CutoffResult | None:
        """A cut-off run if this process holds the lease; None when another one does."""
        async with self._lock:
            now = self._clock() if at is None else at
            if not await self._store.acquire_lease(LEASE, self._owner, LEASE_TTL_S, self._clock()):
                _log.info("cutoff_skipped_lease_held_elsewhere")
                return None
            self.last = await run_cutoff(
                self._store,
                self._topology,
                now=now,
                hooks=self._hooks,
                credentials=self._credentials,
            )
            return self.last

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._forever())

    def trigger(self) -> None:
        """Run a cut-off now, in the background (manual close: SIGUSR1)."""
        task = asyncio.get_running_loop().create_task(self._guarded(None))
        self._manual.add(task)
        task.add_done_callback(self._manual.discard)

    async def _guarded(self, at: float | None) -> None:
        try:
            await self.run_once(at)
        except Exception:
            _log.exception("cutoff_run_failed")

    async def _forever(self) -> None:
        while True:
            at = next_cutoff(self._clock(), self._topology.settlement.cutoff)
            await asyncio.sleep(max(0.0, at - self._clock()))  # a schedule, not a sync point
            await self._guarded(at)

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._manual) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
