"""The reconciliation run: load the three sides, compare, store the issues.

Re-running is idempotent: an issue's id is derived from (type, kind, RRN), so a discrepancy
found again only refreshes ``last_seen`` and its detail; an operator's RESOLVED or IGNORED
stays (the same discrepancy is never listed twice). A discrepancy that disappeared keeps its
issue as it was: resolving it is the operator's call, with a note.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switch.backoffice.recon.engine import LATE_AFTER_S, reconcile
from switch.backoffice.recon.sources import load_reports, read_books, switch_transactions
from switch.domain.ledger import ReconIssue
from switch.store.base import Store


@dataclass(frozen=True, slots=True)
class RunResult:
    found: list[ReconIssue]  # this run's discrepancies, as stored (status kept)
    new: int


async def run(
    store: Store,
    *,
    reports_dir: str | Path,
    books: Sequence[str | Path] = (),
    fee_table: Sequence[Any] | None = None,
    cutoff: float | None = None,
    now: float | None = None,
    late_after_s: float = LATE_AFTER_S,
) -> RunResult:
    at = time.time() if now is None else now
    until = at if cutoff is None else cutoff
    txs = await switch_transactions(store, float("inf"))
    reports = await asyncio.to_thread(load_reports, reports_dir)
    issuer = await asyncio.to_thread(read_books, books) if books else None
    disputes = await store.disputes()
    found = reconcile(
        txs,
        reports,
        issuer,
        cutoff=until,
        fee_table=fee_table,
        late_after_s=late_after_s,
        disputes=disputes,
    )
    new = 0
    for issue in found:
        new += await store.recon_upsert(issue, at)
    stored = {i.issue_id: i for i in await store.recon_issues()}
    return RunResult([stored[i.issue_id] for i in found], new)
