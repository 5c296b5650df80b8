"""The settlement run at cut-off: close batches, write clearing files, have the acquirer and
issuer back offices consume them, read the settlement reports back, settle transactions.

``run_cutoff`` runs ``switch.backoffice.settlement.steps.STEPS`` in order (issue 17: each
streams in pages of ``steps.PAGE`` rows, logs ``step_done step=<name> rows=<n> seconds=<s>``
and is safe to rerun after a crash anywhere, ``crashpoint("<name>.item")`` once per page):

1. ``sweep``: join every capture or refund whose batch join failed at the time to its
   terminal's open batch (``switch.backoffice.batches.sweep``);
2. ``close``: close every terminal's open batch that has items (``Store.close_batch``, atomic);
3. ``clear``: every CLOSED batch becomes clearing records: a captured sale (state CAPTURED) is
   a CAPTURE presentment of its captured amount, an approved refund a REFUND presentment, a
   void nothing; records are streamed into their acquirer's file (``clearing.ClearingWriter``;
   one file per acquirer per run, an empty one when it has nothing; renamed into place when
   whole), then the batches are CLEARED; a batch holding a captured stand-in sale whose advice
   is still owed stays CLOSED, whole, for a later run (``switch.backoffice.settlement.standin``);
4. ``settle``: each acquirer's ``Settle`` (``acquirer.back_office``) presents its files to the
   issuers and writes the settlement report (every file of the acquirer that has no report yet,
   so a file an unreachable acquirer missed is settled by the next run; an acquirer or issuer
   that does not answer is logged and skipped, the rest of the run goes on);
5. ``apply``: every report not applied yet (no mark under ``<dir>/applied/``) is read in pages;
   each page's SETTLED captures go CAPTURED -> SETTLED (a partial capture settles its captured
   amount) and SETTLED refunds APPROVED -> SETTLED (a refund-only transition,
   ``switch.domain.transactions.TYPED_TRANSITIONS``) in one store call
   (``Store.settle_presented``). REJECTED entries stay CAPTURED (APPROVED) for the operator;
6. ``expire``: every issuer's ``ExpireHolds`` releases holds that expired uncaptured.

Hooks: ``on_presented(tx, record)`` after a record is written, ``on_settled(tx, entry)``
after a SETTLED entry is applied: the functions registered here, and the methods of the
``hooks`` objects passed to ``run_cutoff`` (the switch passes its
``switch.backoffice.ledger.Ledger``, which posts the presentment and the settlement); after each
page, a hook object's ``flush()`` coroutine, if it has one (a ledger that buffers a page of
postings). Hooks must be idempotent: a repeated run may call them again for the same transaction
(the ledger posts once per event id). A failing hook is logged and does not stop the run.

A crash between writing a file and marking its batches CLEARED presents them again in the
next file: the issuer answers a presentment it has seen with its first result, and the
switch's CAPTURED -> SETTLED compare-and-set happens once, so nothing is posted twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import grpc

from payswitch.logs import get as get_logger
from payswitch.world.topology import Topology
from switch.backoffice.settlement.clear import record_of
from switch.backoffice.settlement.context import (
    CutoffResult,
    Hook,
    Record,
    RunContext,
    StepStat,
    call_hooks,
    flush_hooks,
)
from switch.backoffice.settlement.steps import STEPS, select
from switch.domain.transactions import CasFailed, Changes, Expect, Transaction, TxState, TxType
from switch.store.base import Store

_log = get_logger("switch.backoffice.settlement")

__all__ = [
    "CutoffResult",
    "Hook",
    "Record",
    "SettlementHooks",
    "StepStat",
    "call_hooks",
    "flush_hooks",
    "on_presented",
    "on_settled",
    "record_of",
    "run_cutoff",
    "settle_refund",
]

_on_presented: list[Hook] = []
_on_settled: list[Hook] = []


class SettlementHooks(Protocol):
    """What ``run_cutoff`` calls besides the registered hooks (e.g. the ledger)."""

    async def on_presented(self, tx: Transaction, record: Record) -> object: ...

    async def on_settled(self, tx: Transaction, entry: Record) -> object: ...


def on_presented(hook: Hook) -> Hook:
    """Register ``hook(tx, clearing_record)``; usable as a decorator."""
    _on_presented.append(hook)
    return hook


def on_settled(hook: Hook) -> Hook:
    """Register ``hook(tx, settlement_entry)`` for SETTLED entries; usable as a decorator."""
    _on_settled.append(hook)
    return hook


async def run_cutoff(
    store: Store,
    topology: Topology,
    *,
    directory: Path | None = None,
    now: float | None = None,
    hooks: Sequence[SettlementHooks] = (),
    credentials: grpc.ChannelCredentials | None = None,
    steps: Sequence[str] | None = None,
    on_step: Callable[[StepStat], object] | None = None,
) -> CutoffResult:
    """One whole settlement run (see the module docstring). ``hooks``: objects with
    ``on_presented(tx, record)`` and ``on_settled(tx, entry)`` coroutine methods.
    ``credentials``: the switch's network identity for the back-office calls (the acquirers'
    ``Settle`` and the issuers' ``ExpireHolds`` take them from the switch only); None when the
    topology's network is plaintext. ``steps``: the names of the steps to run (all, in order,
    when None); an unknown name is a ValueError. ``on_step``: called with each step's figures
    as it ends."""
    chosen = select(STEPS, steps)
    now = time.time() if now is None else now
    ctx = RunContext(
        store=store,
        topology=topology,
        directory=Path(directory or topology.settlement.directory()),
        now=now,
        hooks=tuple(hooks),
        presented=(*_on_presented, *(h.on_presented for h in hooks)),
        settled=(*_on_settled, *(h.on_settled for h in hooks)),
        credentials=credentials,
        result=CutoffResult(cutoff_at=now),
    )
    try:
        # The first flush (of nothing) tells a buffering hook (the ledger) that this run flushes
        # after every page, so the first page's postings are buffered too, not posted singly.
        await flush_hooks(ctx.hooks)
        for step in chosen:
            started = time.perf_counter()
            rows = await step.run(ctx)
            seconds = time.perf_counter() - started
            stat = StepStat(step.name, rows, seconds)
            ctx.result.steps.append(stat)
            if on_step is not None:
                on_step(stat)
            _log.info("step_done", step=step.name, rows=rows, seconds=round(seconds, 3))
        await flush_hooks(ctx.hooks)  # nothing buffered outlives the run
    finally:
        await ctx.close()
    _log.info(
        "settlement_done",
        settled=ctx.result.settled,
        released=sum(ctx.result.released.values()),
    )
    return ctx.result


async def settle_refund(store: Store, tx: Transaction) -> Transaction:
    """APPROVED -> SETTLED for a refund the acquirer settled (``TYPED_TRANSITIONS``: the
    compare-and-set expects the REFUND type, so no authorization can skip its capture)."""
    try:
        return await store.compare_and_set(
            tx.id,
            Expect(state=TxState.APPROVED, type=TxType.REFUND),
            Changes(state=TxState.SETTLED, updated_at=time.time()),
        )
    except CasFailed as exc:
        return exc.current  # settled by an earlier run
