"""The settlement run as an ordered list of named steps (like ``switch.pipeline.stages``):

    sweep -> close -> clear -> settle -> apply -> expire

Each step is a small class with a ``name`` and ``run(ctx) -> rows``; it streams in pages
(``context.PAGE``), is safe to rerun after a crash anywhere, and passes
``crashpoint("<name>.item")`` once per page or item after the durable part of it.
``run_cutoff`` times each and logs ``step_done``; ``payswitch-backoffice cutoff --steps``
runs a subset, in this order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import grpc

from payswitch.crashpoint import crashpoint
from payswitch.logs import get as get_logger
from payswitch.v1 import settlement_pb2, settlement_pb2_grpc
from switch.backoffice.batches.sweep import join_unbatched
from switch.backoffice.settlement.clear import Clear
from switch.backoffice.settlement.context import SETTLE_TIMEOUT_S, RunContext
from switch.backoffice.settlement.settle import Apply, Settle

_log = get_logger("switch.backoffice.settlement")


class Step(Protocol):
    name: str

    async def run(self, ctx: RunContext) -> int: ...


class Sweep:
    """Captures and refunds whose batch join failed at the time join the open batch."""

    name = "sweep"

    async def run(self, ctx: RunContext) -> int:
        return await join_unbatched(ctx.store, ctx.now)  # crashpoint("sweep.item") per page


class Close:
    """Every terminal's open batch that has items is closed (the next one opened)."""

    name = "close"

    async def run(self, ctx: RunContext) -> int:
        store = ctx.store
        for terminal in ctx.topology.terminals:
            open_no = await store.open_batch_no(terminal.id, ctx.now)
            if not await store.batch_items_page(terminal.id, open_no, "", 1):
                continue
            closed = await store.close_batch(terminal.id, ctx.now, with_items=False)
            ctx.result.closed.append(closed.info)
            crashpoint(f"{self.name}.item")
        return len(ctx.result.closed)


class Expire:
    """Every issuer releases the holds that expired uncaptured."""

    name = "expire"

    async def run(self, ctx: RunContext) -> int:
        rows = 0
        for issuer in ctx.topology.issuers:
            stub = settlement_pb2_grpc.IssuerSettlementServiceStub(
                ctx.channel_to(issuer.listen, ("issuer", issuer.id))
            )
            try:
                resp = await stub.ExpireHolds(
                    settlement_pb2.ExpireHoldsRequest(
                        now_ms=int(ctx.now * 1000), report_dir=str(ctx.directory)
                    ),
                    timeout=SETTLE_TIMEOUT_S,
                )
            except grpc.aio.AioRpcError as exc:
                _log.warning("expire_holds_failed", issuer=issuer.id, code=exc.code().name)
                continue
            ctx.result.released[issuer.id] = len(resp.released_rrns)
            rows += len(resp.released_rrns)
            crashpoint(f"{self.name}.item")
        return rows


STEPS: tuple[Step, ...] = (Sweep(), Close(), Clear(), Settle(), Apply(), Expire())


def select(steps: Sequence[Step], names: Sequence[str] | None) -> list[Step]:
    """The steps named (in the run's order), all when ``names`` is None; ValueError naming an
    unknown one."""
    if names is None:
        return list(steps)
    known = {s.name for s in steps}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"steps: unknown {unknown} (known: {', '.join(s.name for s in steps)})")
    wanted = set(names)
    return [s for s in steps if s.name in wanted]
