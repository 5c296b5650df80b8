"""The reconciliation run: stream the three sides into a workspace, compare, store the issues.

Memory is bounded whatever the day's size (issue 17): the switch's transactions are read a
store page at a time, the reports an entry at a time, the books a row at a time, all into the
run's scratch workspace (``switch.backoffice.recon.workspace``), which compares them in RRN
slices with the pure engine; only the issues found are held, and they are few.

Re-running is idempotent: an issue's id is derived from (type, kind, RRN), so a discrepancy
found again only refreshes ``last_seen`` and its detail; an operator's RESOLVED or IGNORED
stays (the same discrepancy is never listed twice). A discrepancy that disappeared keeps its
issue as it was: resolving it is the operator's call, with a note. A run killed anywhere
(``crashpoint("recon.page")`` after each page of issues stored) is simply run again: the
workspace is scratch, the upserts are idempotent.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from payswitch.crashpoint import crashpoint
from switch.backoffice.recon.engine import LATE_AFTER_S
from switch.backoffice.recon.sources import (
    book_rows,
    open_report,
    report_paths,
    switch_pages,
)
from switch.backoffice.recon.workspace import Counts, Workspace
from switch.domain.ledger import ReconIssue
from switch.store.base import Store
from switch.store.ledger import dispute_pages

ISSUE_PAGE = 200  # issues stored per page (one crash point each)


@dataclass(frozen=True, slots=True)
class RunResult:
    found: list[ReconIssue]  # this run's discrepancies, as stored (status kept)
    new: int
    rows: Counts | None = None  # rows read per side
    seconds: float = 0.0
    by_type: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        """One JSON-able line for scripts and the benchmark."""
        rows = self.rows
        return {
            "rows": {} if rows is None else {
                "switch": rows.switch,
                "acquirer": rows.acquirer,
                "issuer": rows.issuer,
                "disputes": rows.disputes,
            },
            "issues": dict(sorted(self.by_type.items())),
            "found": len(self.found),
            "new": self.new,
            "seconds": round(self.seconds, 3),
        }  # fmt: skip


async def run(
    store: Store,
    *,
    reports_dir: str | Path,
    books: Sequence[str | Path] = (),
    fee_table: Sequence[Any] | None = None,
    cutoff: float | None = None,
    now: float | None = None,
    late_after_s: float = LATE_AFTER_S,
    work_dir: str | Path | None = None,
) -> RunResult:
    """``work_dir``: where the scratch workspace goes (default: the system's temp folder)."""
    started = time.monotonic()
    at = time.time() if now is None else now
    until = at if cutoff is None else cutoff
    ws = await asyncio.to_thread(Workspace, work_dir)
    try:
        await _load(ws, store, Path(reports_dir), books)
        await asyncio.to_thread(
            ws.compare,
            cutoff=until,
            fee_table=fee_table,
            late_after_s=late_after_s,
            with_books=bool(books),
        )
        new, ids = 0, []
        pages = ws.issue_pages(ISSUE_PAGE)
        while (page := await asyncio.to_thread(next, pages, None)) is not None:
            for issue in page:
                new += await store.recon_upsert(issue, at)
                ids.append(issue.issue_id)
            crashpoint("recon.page")
        counts = ws.counts
    finally:
        await asyncio.to_thread(ws.close)
    found = []
    for issue_id in ids:  # as stored (an operator's status kept): the issues found, no more
        stored = await store.recon_get(issue_id)
        if stored is not None:
            found.append(stored)
    return RunResult(
        found,
        new,
        counts,
        time.monotonic() - started,
        dict(Counter(i.type for i in found)),
    )


async def _load(
    ws: Workspace, store: Store, reports_dir: Path, books: Sequence[str | Path]
) -> None:
    # The store reads the next page while the workspace writes this one.
    writing: asyncio.Future[None] | None = None
    try:
        async for txs in switch_pages(store, float("inf")):
            if writing is not None:
                await writing
            writing = asyncio.ensure_future(asyncio.to_thread(ws.add_transactions, txs))
    finally:
        if writing is not None:
            await writing
    for path in await asyncio.to_thread(report_paths, reports_dir):
        header, entries = await asyncio.to_thread(open_report, path)
        await asyncio.to_thread(ws.add_report, header, entries)
    if books:
        await asyncio.to_thread(ws.add_book_rows, book_rows(books))
    async for disputes in dispute_pages(store):
        await asyncio.to_thread(ws.add_disputes, disputes)
    await asyncio.to_thread(ws.seal)
