"""Upload the offline journal (``OfflineService.SyncOffline``) and take the fresh trust.

Asks where to resume (``GetOfflineStatus``), streams every journal entry after that point,
then marks the journal synced to what the switch says it settled and installs the trust and
limits the answer brings. Safe to run again at any moment: a cut upload resumes after the last
settled entry, a repeated one changes nothing. ``OfflineTerminal`` is blocking SQLite, so its
calls go to a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from payswitch.offline.wire import trust_from_proto
from payswitch.v1 import offline_pb2, offline_pb2_grpc
from terminals.offline import Entry, OfflineTerminal


@dataclass(frozen=True, slots=True)
class SyncResult:
    sent: int
    settled_through: int
    accepted: int
    flagged: int
    repeated: int


def _request(t: OfflineTerminal, journal_id: str, e: Entry) -> offline_pb2.SyncOfflineRequest:
    return offline_pb2.SyncOfflineRequest(
        journal_id=journal_id,
        terminal_id=t.terminal_id,
        merchant_id=t.merchant_id,
        seq=e.seq,
        allowance=e.allowance.body,
        allowance_signature=e.allowance.signature,
        spend=e.spend.body,
        spend_signature=e.spend.signature,
        trust_version=e.trust_version,
    )


async def refresh(stub: offline_pb2_grpc.OfflineServiceStub, t: OfflineTerminal) -> int:
    """Trust and limits only (a terminal coming up); returns the switch's resume point."""
    journal_id = await asyncio.to_thread(t.journal_id)
    status = await stub.GetOfflineStatus(
        offline_pb2.GetOfflineStatusRequest(terminal_id=t.terminal_id, journal_id=journal_id)
    )
    trust, limits = trust_from_proto(status.trust)
    await asyncio.to_thread(t.install, trust, limits)
    await asyncio.to_thread(t.mark_synced, status.settled_through)
    return int(status.settled_through)


async def sync(
    stub: offline_pb2_grpc.OfflineServiceStub,
    t: OfflineTerminal,
    *,
    timeout: float = 30.0,
    stop_after: int | None = None,
) -> SyncResult:
    """Upload what the switch has not settled. ``stop_after`` (tests) ends the stream early,
    as a cut connection would after that many entries."""
    mark = await refresh(stub, t)
    entries = await asyncio.to_thread(t.pending, mark)
    todo = entries if stop_after is None else entries[:stop_after]

    journal_id = await asyncio.to_thread(t.journal_id)

    async def stream() -> AsyncIterator[offline_pb2.SyncOfflineRequest]:
        for e in todo:
            yield _request(t, journal_id, e)

    answer = await stub.SyncOffline(stream(), timeout=timeout)
    await asyncio.to_thread(t.mark_synced, answer.settled_through)
    trust, limits = trust_from_proto(answer.trust)
    await asyncio.to_thread(t.install, trust, limits)
    return SyncResult(
        len(todo), int(answer.settled_through), answer.accepted, answer.flagged, answer.repeated
    )
