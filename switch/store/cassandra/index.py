"""Secondary lookups of the Cassandra store without ALLOW FILTERING or a cluster scan:
transactions by state (recovery) and refunds by original.

``transactions_by_state`` is partitioned by (state, minute of deadline_at) and clustered by
(deadline_at, id); ``transaction_state_buckets`` lists, per state, the minutes that may hold
entries. Both are plain-write tables and only hints: the transaction row decides.

Consistency reasoning:
- The entry for a transaction's new state is written, and acknowledged at the store's
  consistency, before the LWT that moves it; the old entry is deleted after the LWT. So every
  committed state has its entry; a failed or crashed transition leaves a stale one.
- A reader re-checks each entry against the transaction row read at the same consistency;
  R + W > RF (enforced at open), so it sees every acknowledged transition and skips stale
  entries. It deletes an entry only when the entry's state can no longer be reached from the
  row's state (the state machine has no cycles), or when the entry's transaction never appeared
  and its deadline is long past, so a clean-up can never hide a live transaction.
- A bucket marker is deleted when its bucket was read empty, with ``USING TIMESTAMP
  scan_start - MARKER_MARGIN_S``: a writer that (re)wrote the marker after that keeps it.
  Writers refresh their marker at least every MARKER_REFRESH_S, so an entry written after the
  reader's read always has a marker newer than the delete (given clock skew between switch
  processes below MARKER_MARGIN_S - MARKER_REFRESH_S).
- Cost: each transition writes one entry and deletes one. A scan of a minute still being
  written reads that minute's deleted entries (tombstones): about one minute of traffic per
  scan; the table's gc_grace_seconds is one hour since resurrected stale entries are harmless.
  Final states are indexed too (the interface serves every state); their partitions hold one
  minute of that state's traffic each.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cassandra.query import BatchStatement, BatchType

from switch.domain.transactions import TRANSITIONS, Transaction, TxState, TxType
from switch.store.cassandra.exec import Cql, Row

BUCKET_S = 60
MARKER_REFRESH_S = 30.0
BATCH = 16  # entries per unlogged batch of put_many
IN_FLIGHT = 32  # batches of put_many in flight
MARKER_MARGIN_S = 120.0
ORPHAN_S = 60.0  # longer than any insert can take (request timeouts times retries)
PAGE = 200
MAX_PAGES = 10_000

Peek = Callable[[str], Awaitable[Transaction | None]]
PeekMany = Callable[[list[str]], Awaitable[list[Transaction]]]


def _closure() -> dict[TxState, frozenset[TxState]]:
    out: dict[TxState, frozenset[TxState]] = {}
    for start in TxState:
        seen: set[TxState] = set()
        todo = list(TRANSITIONS[start])
        while todo:
            s = todo.pop()
            if s not in seen:
                seen.add(s)
                todo.extend(TRANSITIONS[s])
        out[start] = frozenset(seen)
    return out


REACHABLE = _closure()


def bucket_of(deadline_at: float) -> int:
    if not math.isfinite(deadline_at):
        raise ValueError("deadline_at must be a finite number of Unix seconds")
    return math.floor(deadline_at / BUCKET_S)


def _now_us() -> int:
    return time.time_ns() // 1000


class StateIndex:
    """Maintains and reads the by-state and by-original lookups for one store."""

    def __init__(self, cql: Cql, peek: Peek, peek_many: PeekMany | None = None) -> None:
        self._cql = cql
        self._peek = peek  # tx id -> awaitable of the Transaction read at store consistency
        # ids -> the Transactions that exist, read at the same consistency in multi-key reads
        # (a scan's page of entries in a few requests, not one per entry)
        self._peek_many = peek_many
        self._markers: dict[tuple[str, int], float] = {}

    async def put(self, state: TxState, deadline_at: float, tx_id: str) -> None:
        """The entry (and the bucket marker, unless refreshed lately), acknowledged before
        the transition it announces."""
        q = self._cql.q
        bucket = bucket_of(deadline_at)
        writes = [self._cql.run(q.idx_put, (state.value, bucket, deadline_at, tx_id))]
        now = time.time()
        key = (state.value, bucket)
        refresh = now - self._markers.get(key, -math.inf) > MARKER_REFRESH_S
        if refresh:
            writes.append(self._cql.run(q.bucket_put, (state.value, bucket, _now_us())))
        await asyncio.gather(*writes)
        if refresh:
            if len(self._markers) > 4096:
                self._markers.clear()  # only a refresh cache
            self._markers[key] = now

    async def put_many(self, entries: list[tuple[TxState, float, str]]) -> None:
        """``put`` for a page of entries: unlogged batches of BATCH writes (one round trip
        each, every write idempotent), each bucket's marker once."""
        q = self._cql.q
        now = time.time()
        writes: list[tuple[Any, tuple[Any, ...]]] = []
        fresh: set[tuple[str, int]] = set()
        for state, deadline_at, tx_id in entries:
            bucket = bucket_of(deadline_at)
            writes.append((q.idx_put, (state.value, bucket, deadline_at, tx_id)))
            key = (state.value, bucket)
            if key not in fresh and now - self._markers.get(key, -math.inf) > MARKER_REFRESH_S:
                fresh.add(key)
                writes.append((q.bucket_put, (state.value, bucket, _now_us())))
        await self._batched(writes)
        if len(self._markers) > 4096:
            self._markers.clear()  # only a refresh cache
        for key in fresh:
            self._markers[key] = now

    async def drop_many(self, entries: list[tuple[TxState, float, str]]) -> None:
        """Delete entries in unlogged batches of BATCH (best effort, like ``drop_later``)."""
        q = self._cql.q
        writes = [(q.idx_drop, (s.value, bucket_of(d), d, i)) for s, d, i in entries]
        await self._batched(writes)

    async def _batched(self, writes: list[tuple[Any, tuple[Any, ...]]]) -> None:
        batches = []
        for start in range(0, len(writes), BATCH):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for stmt, params in writes[start : start + BATCH]:
                batch.add(stmt, params)
            batches.append(batch)
        for start in range(0, len(batches), IN_FLIGHT):
            await asyncio.gather(
                *(self._cql.run(b, None) for b in batches[start : start + IN_FLIGHT])
            )

    def drop_later(self, state: TxState, deadline_at: float, tx_id: str) -> None:
        """Delete an entry in the background (best effort: a left-over is only stale)."""
        q = self._cql.q
        params = (state.value, bucket_of(deadline_at), deadline_at, tx_id)
        self._cql.spawn(self._cql.run(q.idx_drop, params))

    async def put_refund(self, tx: Transaction) -> None:
        if tx.type is TxType.REFUND and tx.original_id:
            await self._cql.run(self._cql.q.refund_put, (tx.original_id, tx.created_at, tx.id))

    # --- reads --------------------------------------------------------------------------
    async def in_state(
        self,
        state: TxState,
        older_than: float,
        limit: int,
        start: tuple[float, str] | None = None,
    ) -> list[Transaction]:
        """``start``: read only past this (deadline_at, id), from its own bucket on."""
        found: list[Transaction] = []
        if limit <= 0 or math.isnan(older_than) or older_than == -math.inf:
            return found
        q = self._cql.q
        scan_start_us = _now_us()
        last = bucket_of(older_than) if math.isfinite(older_than) else 2**62
        after = -(2**63) if start is None else bucket_of(start[0]) - 1
        for _page in range(MAX_PAGES):
            rows = await self._cql.run(q.buckets, (state.value, after, last, PAGE))
            for r in rows:
                position = (
                    start if start is not None and r["bucket"] == bucket_of(start[0]) else None
                )
                await self._scan(
                    state, r["bucket"], older_than, limit, found, scan_start_us, position
                )
                if len(found) >= limit:
                    return found
            if len(rows) < PAGE:
                break
            after = rows[-1]["bucket"]
        return found

    async def _scan(
        self,
        state: TxState,
        bucket: int,
        older_than: float,
        limit: int,
        found: list[Transaction],
        scan_start_us: int,
        position: tuple[float, str] | None = None,
    ) -> None:
        q = self._cql.q
        seen_any = False
        partial = position is not None  # a read from a position: empty says nothing of it
        for _page in range(MAX_PAGES):
            if position is None:
                params: tuple[object, ...] = (state.value, bucket, older_than, PAGE)
                rows = await self._cql.run(q.idx_first, params)
            else:
                params = (state.value, bucket, *position, older_than, PAGE)
                rows = await self._cql.run(q.idx_after, params)
            seen_any = seen_any or bool(rows)
            txs = await self._rows_of([r["id"] for r in rows])
            for entry, tx in zip(rows, txs, strict=True):
                if (
                    tx is not None
                    and tx.state is state
                    and tx.deadline_at == entry["deadline_at"]
                    and tx.deadline_at < older_than
                ):
                    found.append(tx)
                    if len(found) >= limit:
                        return
                else:
                    self._maybe_clean(state, entry, tx)
            if len(rows) < PAGE:
                break
            position = (rows[-1]["deadline_at"], rows[-1]["id"])
        if not seen_any and not partial and (bucket + 1) * BUCKET_S <= older_than:
            stamp = scan_start_us - int(MARKER_MARGIN_S * 1_000_000)
            self._cql.spawn(self._cql.run(q.bucket_drop, (stamp, state.value, bucket)))

    async def _rows_of(self, ids: list[str]) -> list[Transaction | None]:
        """The row of each id (None: not there), in the order given."""
        if self._peek_many is None:
            return list(await asyncio.gather(*(self._peek(i) for i in ids)))
        found = {tx.id: tx for tx in await self._peek_many(ids)}
        return [found.get(i) for i in ids]

    def _maybe_clean(self, state: TxState, entry: Row, tx: Transaction | None) -> None:
        """Delete an entry that can never become true again."""
        if tx is None:
            dead = entry["deadline_at"] < time.time() - ORPHAN_S
        else:
            dead = tx.state is not state and state not in REACHABLE[tx.state]
        if dead:
            self.drop_later(state, entry["deadline_at"], entry["id"])

    async def refunds_of(self, original_id: str) -> list[Transaction]:
        q = self._cql.q
        entries: list[Row] = []
        rows = await self._cql.run(q.refunds_first, (original_id, PAGE))
        for _page in range(MAX_PAGES):
            entries.extend(rows)
            if len(rows) < PAGE:
                break
            last = rows[-1]
            rows = await self._cql.run(
                q.refunds_after, (original_id, last["created_at"], last["id"], PAGE)
            )
        txs = await asyncio.gather(*(self._peek(e["id"]) for e in entries))
        return [
            tx
            for tx in txs
            if tx is not None and tx.type is TxType.REFUND and tx.original_id == original_id
        ]
