"""The ``settle`` and ``apply`` steps: acquirers settle the clearing files, the switch applies
the settlement reports in pages.

``settle`` asks each acquirer to settle every file of its that has no report yet (a file an
unreachable acquirer missed is settled by the next run). ``apply`` reads every report not yet
marked applied (``<dir>/applied/<acquirer>/<file_id>``, written when its last page is done),
a page at a time: one ``Store.settle_presented`` call per page (the next page's runs while
this page's hooks do), the ``on_settled`` hooks per SETTLED entry, then the hook objects'
``flush``. A crash mid-report reapplies it from the top:
the compare-and-sets that already happened fail harmlessly (the store hands the SETTLED row
back) and the hooks are idempotent (the ledger posts once per event id).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc

from payswitch.crashpoint import crashpoint
from payswitch.logs import get as get_logger
from payswitch.settlement.report import (
    ReportEntries,
    ReportFormatError,
    iter_report,
    report_path,
)
from payswitch.v1 import settlement_pb2, settlement_pb2_grpc
from switch.backoffice.settlement.context import (
    PAGE,
    SETTLE_TIMEOUT_S,
    Record,
    RunContext,
    call_hooks,
    flush_hooks,
)
from switch.domain.transactions import Transaction, TxState

_log = get_logger("switch.backoffice.settlement")


def unsettled_files(directory: Path, acquirer_id: str) -> list[Path]:
    """The acquirer's clearing files that have no settlement report yet, oldest first: the
    file just written, and any an earlier run could not get settled (acquirer down)."""
    folder = Path(directory) / "clearing" / acquirer_id
    out = []
    for path in sorted(folder.glob("*.jsonl")):
        file_id = f"{acquirer_id}-{path.stem}"
        if not report_path(directory, acquirer_id, file_id).exists():
            out.append(path)
    return out


def applied_mark(directory: Path, acquirer_id: str, file_id: str) -> Path:
    return Path(directory) / "applied" / acquirer_id / file_id


def unapplied_reports(directory: Path, acquirer_id: str) -> list[Path]:
    """The acquirer's settlement reports the switch has not applied whole yet, oldest first."""
    folder = Path(directory) / "settlement" / acquirer_id
    return [
        path
        for path in sorted(folder.glob("*.json"))
        if not applied_mark(directory, acquirer_id, path.stem).exists()
    ]


def _mark_applied(directory: Path, acquirer_id: str, file_id: str) -> None:
    mark = applied_mark(directory, acquirer_id, file_id)
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.touch()


class Settle:
    """Each acquirer settles its unsettled clearing files (one ``Settle`` call per file)."""

    name = "settle"

    async def run(self, ctx: RunContext) -> int:
        rows = 0
        for acquirer in ctx.topology.acquirers:
            stub = settlement_pb2_grpc.AcquirerSettlementServiceStub(
                ctx.channel_to(acquirer.listen, ("acquirer", acquirer.id))
            )
            for path in await asyncio.to_thread(unsettled_files, ctx.directory, acquirer.id):
                try:
                    resp = await stub.Settle(
                        settlement_pb2.SettleRequest(
                            clearing_path=str(path),
                            report_dir=str(ctx.directory),
                            now_ms=int(ctx.now * 1000),
                        ),
                        timeout=SETTLE_TIMEOUT_S,
                    )
                except grpc.aio.AioRpcError as exc:
                    # Left for the next run: the file stays without a report until settled.
                    _log.warning("settle_failed", acquirer=acquirer.id, code=exc.code().name)
                    ctx.result.unsettled.append(path)
                    break
                ctx.result.reports[f"{acquirer.id}-{path.stem}"] = Path(resp.report_path)
                rows += resp.settled + resp.rejected
                crashpoint(f"{self.name}.item")
        return rows


class Apply:
    """Settlement reports -> SETTLED transactions and the ``on_settled`` hooks, in pages."""

    name = "apply"

    async def run(self, ctx: RunContext) -> int:
        rows = 0
        for acquirer in ctx.topology.acquirers:
            for path in await asyncio.to_thread(unapplied_reports, ctx.directory, acquirer.id):
                try:
                    rows += await self._apply(ctx, acquirer.id, path)
                except ReportFormatError as exc:  # left unmarked for the operator; the rest go on
                    _log.error("settlement_report_bad", report=path.name, error=str(exc))
        return rows

    async def _apply(self, ctx: RunContext, acquirer_id: str, path: Path) -> int:
        """The report a page at a time, the store's part of the next page running while the
        hooks (the ledger's postings) of this one run: both wait on the store, rarely on
        this process. A crash leaves the next page partly settled, as a crash inside a page
        did: the rerun applies the report from the top."""
        rows = 0
        entries = iter_report(path)
        page = await asyncio.to_thread(_next_page, entries)
        ahead = asyncio.ensure_future(_settle(ctx, page)) if page else None
        try:
            while ahead is not None:
                txs = await ahead
                ahead = None
                current, page = page, await asyncio.to_thread(_next_page, entries)
                if page:
                    ahead = asyncio.ensure_future(_settle(ctx, page))
                await _hooks(ctx, current, txs)
                rows += len(current)
                crashpoint(f"{self.name}.item")
        finally:
            if ahead is not None:  # the hooks failed: the next page's store calls end first
                await asyncio.gather(ahead, return_exceptions=True)
        ctx.result.add_totals(entries.totals())
        await asyncio.to_thread(_mark_applied, ctx.directory, acquirer_id, path.stem)
        return rows


def _settled(page: list[Record]) -> list[Record]:
    return [e for e in page if e["status"] == "SETTLED"]


async def _settle(ctx: RunContext, page: list[Record]) -> dict[str, Transaction]:
    """The page's SETTLED entries moved to SETTLED in the store (one call)."""
    settled = _settled(page)
    captures = [e["transaction_id"] for e in settled if e["kind"] == "CAPTURE"]
    refunds = [e["transaction_id"] for e in settled if e["kind"] == "REFUND"]
    return {tx.id: tx for tx in await ctx.store.settle_presented(captures, refunds, time.time())}


async def _hooks(ctx: RunContext, page: list[Record], txs: dict[str, Transaction]) -> None:
    """The ``on_settled`` hooks of the page's SETTLED entries, then their flush."""
    for entry in _settled(page):
        tx = txs.get(entry["transaction_id"])
        if tx is None:
            continue
        if tx.state is TxState.SETTLED:
            ctx.result.settled += 1
        await call_hooks(ctx.settled, tx, entry)
    await flush_hooks(ctx.hooks)


def _next_page(entries: ReportEntries) -> list[Record]:
    return entries.page(PAGE)
