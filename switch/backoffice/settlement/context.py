"""What the settlement run's steps share: the run's context, its result (counts and paths,
never every id of the day), the hooks and the page size."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from payswitch.logs import get as get_logger
from payswitch.process import connect_address
from payswitch.tls import aio_channel
from payswitch.world.topology import Topology
from switch.domain.batches import BatchInfo
from switch.domain.transactions import Transaction
from switch.store.base import Store

_log = get_logger("switch.backoffice.settlement")

PAGE = 2_000  # rows per page: what a step holds in memory at once, and its crash-point unit
SETTLE_TIMEOUT_S = 600.0  # one acquirer's Settle of one file (a million-row file takes minutes)

# A JSON record of payswitch.settlement's formats: a clearing presentment, a settlement report
# or one of its entries.
Record = dict[str, Any]
Hook = Callable[[Transaction, Record], Awaitable[object]]  # what it returns is not used


@dataclass
class StepStat:
    """What one step did: its name, the rows it handled and how long it took."""

    name: str
    rows: int
    seconds: float


@dataclass
class CutoffResult:
    """What a run did, as counts and paths (never every id of the day: issue 17)."""

    cutoff_at: float
    closed: list[BatchInfo] = field(default_factory=list)  # one per terminal at most
    files: dict[str, Path] = field(default_factory=dict)  # acquirer -> clearing file written
    reports: dict[str, Path] = field(default_factory=dict)  # file id -> settlement report
    settled: int = 0  # transactions moved to SETTLED by this run
    released: dict[str, int] = field(default_factory=dict)  # issuer -> holds released
    unsettled: list[Path] = field(default_factory=list)  # files left for the next run
    steps: list[StepStat] = field(default_factory=list)
    report_totals: dict[str, dict[str, int]] = field(default_factory=dict)

    def totals(self) -> dict[str, dict[str, int]]:
        """Per currency over every report applied: gross, fees, net (never across
        currencies)."""
        return dict(sorted(self.report_totals.items()))

    def add_totals(self, totals: dict[str, dict[str, int]]) -> None:
        for cur, t in totals.items():
            line = self.report_totals.setdefault(
                cur, {"gross_minor": 0, "fees_minor": 0, "net_minor": 0}
            )
            for k in line:
                line[k] += t[k]


@dataclass
class RunContext:
    """One run's inputs and its result so far; the gRPC channels the steps open."""

    store: Store
    topology: Topology
    directory: Path
    now: float
    hooks: Sequence[object]
    presented: Sequence[Hook]
    settled: Sequence[Hook]
    credentials: grpc.ChannelCredentials | None
    result: CutoffResult
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    def channel_to(self, listen: str, server: tuple[str, str]) -> grpc.aio.Channel:
        address = connect_address(listen)
        if address not in self.channels:
            self.channels[address] = aio_channel(address, self.credentials, server=server)
        return self.channels[address]

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()
        self.channels.clear()


async def call_hooks(hooks: Sequence[Hook], tx: Transaction, doc: Record) -> None:
    for hook in hooks:
        try:
            await hook(tx, doc)
        except Exception:
            _log.exception("settlement_hook_failed", tx=tx.id)


async def flush_hooks(hooks: Sequence[object]) -> None:
    """``await hook.flush()`` for each hook object that has one (after each page)."""
    for hook in hooks:
        flush = getattr(hook, "flush", None)
        if flush is None:
            continue
        try:
            await flush()
        except Exception:
            _log.exception("settlement_hook_flush_failed")
