"""Cassandra backend of the ledger, reconciliation issues and disputes
(``LedgerStore``, ``ReconStore``, ``DisputeStore``).

Posting (no atomic batch across partitions, so in steps that survive a crash anywhere):

1. plain writes of the hints: ``ledger_pending_by_day`` (this id may be incomplete; keyed by
   the posting's day and one of ``SLOTS``), the day, currency and RRN lookups;
2. the claim: ``INSERT INTO ledger_claims ... IF NOT EXISTS`` carrying the posting's lines
   (JSON) with ``complete = false``; an unknown outcome is settled by a SERIAL read of the
   writer id. Not applied: the id is taken; the same content answers False (replay), other
   content raises PostingConflict;
3. the lines into ``ledger_lines`` (plain, idempotent: same key, same values);
4. ``UPDATE ledger_claims SET complete = true`` (a plain write: the row is ours, claimed; one
   Paxos round per posting, not two. Were it to lose to the claim's own timestamp under clock
   skew, the posting would only look incomplete, and finishing it again rewrites the same
   lines), then the pending marker is deleted.

A crash after 2 leaves a claim whose lines may be missing, and its pending marker. The lines
are never lost: they are in the claim row. ``_finish_pending(day)`` runs before a day's lines
are read (and a replay of the same posting finishes it too; a posting found by RRN whose claim
is not complete is finished there): for each marker it reads the claim at SERIAL and writes its
lines (step 3-4 again). A marker without a claim is dropped once older than ``ORPHAN_S`` (its
writer died before claiming: nothing was posted).

A page (``ledger_post_many``, the settlement run's buffered ledger) takes the same steps, each
for the whole page before the next, with plain writes in unlogged batches (round trips saved,
not atomic units: every write is idempotent, same key and values, and the markers cover a crash
between phases): hints and markers; then, under the ledger's writer lock, one ``IN`` read of the
page's claims (the conflict check: same id, other lines -> PostingConflict; same content ->
a replay, finished if incomplete) and plain claim writes for the new ones; then the lines in
batches of one ``(currency, day)`` partition each -- a posting's lines never split, so they land
together and readers see all or none --, the claims complete, the markers dropped.

Why a lock and not one LWT per posting: posting lines are a deterministic function of the
posting id and its event, so what needs serialising is only "read the claims, write the new
ones". Who posts concurrently: the lease-holding settlement run (a successor only after its lease
lapsed) and the disputes CLI (its own ids). A lost race without serialising would count a
posting twice, or let a conflicting posting overwrite a claim silently
(``test_concurrent_pages_of_the_same_postings_write_once``). The lock is a row of ``leases``
(``INSERT IF NOT EXISTS USING TTL``, two LWTs a page instead of one per posting; single
``ledger_post`` takes it too around its LWT claim). Measured on the single node here
(2026-12-07, ``benchmarks/day/store_calls.py``): an LWT per posting held pages to 1.5-3k
postings/s; under the lock 4-5.6k. Residual risk: a writer stalled past ``LOCK_TTL_S`` / 2
between its read and its writes gives up (``held()``); one stalled past the TTL *during* the
claim writes could race a successor -- the same window a lapsed settlement lease has. A
writer killed while holding the lock delays the next one by at most ``LOCK_TTL_S``.

Reconciliation issues and disputes are LWT-only rows, one per id (insert ``IF NOT EXISTS``,
updates ``IF`` on status/state); they are listed by UTC day (``backoffice_by_day``: an issue by
its first_seen, written once its row is in and again by any later upsert of it; a dispute by
raised_at, written before its row as a hint), the days by year, the years in one small
partition (migration 015): no partition grows with the history. Listings read a day a page.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from cassandra.query import BatchStatement, BatchType

from switch.domain.errors import NotFound, StoreUnavailable
from switch.domain.ledger import (
    DISPUTE_COLUMNS,
    ISSUE_COLUMNS,
    Dispute,
    DisputeChanges,
    DisputeConflict,
    DisputeState,
    IssueStatus,
    LedgerEntry,
    LedgerPosting,
    PostingConflict,
    ReconIssue,
    check_dispute_transition,
    check_posting,
)
from switch.store.cassandra.exec import CasOutcomeUnknown, Cql, Row, backoff
from switch.store.cassandra.host import CassandraHost
from switch.store.ledger import check_limit

T = TypeVar("T")

SHARD = 0
PAGE = 500
MAX_PAGES = 100_000
SLOTS = 64  # pending-marker partitions per day (cql/015)
ORPHAN_S = 60.0
POST_CONCURRENCY = 128  # claims (LWTs) of one ledger_post_many in flight at once
IN_FLIGHT = 32  # unlogged batches in flight at once
BATCH = 16  # writes of different partitions per unlogged batch (a few KiB)
PARTITION_ROWS = 100  # lines of one partition per unlogged batch
CLAIM_BATCH = 8  # claims (a few hundred bytes each) per unlogged batch
IN_KEYS = 50  # posting ids per IN read of the page's claims
LOCK = "ledger-writer"  # the writer lock's row in ``leases``
LOCK_TTL_S = 10  # a dead writer's lock lapses after this
LOCK_WAIT_S = 60.0
LOCK_ATTEMPTS = 100_000
_ISSUE_LIST = ", ".join(ISSUE_COLUMNS)
_DISPUTE_LIST = ", ".join(DISPUTE_COLUMNS)

_STATEMENTS = {
    "claim": (
        "INSERT INTO ledger_claims (posting_id, transaction_id, kind, rrn, currency, posted_at, "
        "lines, complete, writer) VALUES (?, ?, ?, ?, ?, ?, ?, false, ?) IF NOT EXISTS"
    ),
    "claim_plain": (
        "INSERT INTO ledger_claims (posting_id, transaction_id, kind, rrn, currency, posted_at, "
        "lines, complete, writer) VALUES (?, ?, ?, ?, ?, ?, ?, false, ?)"
    ),
    "claims_of": (
        "SELECT posting_id, transaction_id, kind, rrn, currency, posted_at, lines, complete, "
        "writer FROM ledger_claims WHERE posting_id IN ?"
    ),
    "lock_take": (
        "INSERT INTO leases (name, owner, writer) VALUES (?, ?, ?) IF NOT EXISTS USING TTL ?"
    ),
    "lock_get": "SELECT owner, writer FROM leases WHERE name = ?",
    "lock_drop": "DELETE FROM leases WHERE name = ? IF owner = ?",
    "claim_get": (
        "SELECT posting_id, transaction_id, kind, rrn, currency, posted_at, lines, complete, "
        "writer FROM ledger_claims WHERE posting_id = ?"
    ),
    "claim_done": "UPDATE ledger_claims SET complete = true WHERE posting_id = ?",
    "line_put": (
        "INSERT INTO ledger_lines (currency, day, posted_at, posting_id, line_no, account, "
        "amount_minor, transaction_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    "lines_first": (
        "SELECT posted_at, posting_id, line_no, account, amount_minor, transaction_id "
        "FROM ledger_lines WHERE currency = ? AND day = ? AND posted_at <= ? LIMIT ?"
    ),
    "lines_after": (
        "SELECT posted_at, posting_id, line_no, account, amount_minor, transaction_id "
        "FROM ledger_lines WHERE currency = ? AND day = ? "
        "AND (posted_at, posting_id, line_no) > (?, ?, ?) AND posted_at <= ? LIMIT ?"
    ),
    "day_put": "INSERT INTO ledger_days (currency, day) VALUES (?, ?)",
    "days": "SELECT day FROM ledger_days WHERE currency = ? LIMIT 100000",
    "currency_put": "INSERT INTO ledger_currencies (shard, currency) VALUES (?, ?)",
    "currencies": "SELECT currency FROM ledger_currencies WHERE shard = ? LIMIT 1000",
    "pending_put": (
        "INSERT INTO ledger_pending_by_day (day, slot, posting_id, created_at) VALUES (?, ?, ?, ?)"
    ),
    "pending_list": (
        "SELECT posting_id, created_at FROM ledger_pending_by_day WHERE day = ? AND slot = ? "
        "AND posting_id > ? LIMIT ?"
    ),
    "pending_drop": (
        "DELETE FROM ledger_pending_by_day WHERE day = ? AND slot = ? AND posting_id = ?"
    ),
    "rrn_put": "INSERT INTO ledger_by_rrn (rrn, posting_id) VALUES (?, ?)",
    "rrn_get": "SELECT posting_id FROM ledger_by_rrn WHERE rrn = ? LIMIT 1000",
    # reconciliation issues
    "issue_insert": (
        f"INSERT INTO recon_issues_by_id ({_ISSUE_LIST}) "  # noqa: S608
        f"VALUES ({', '.join('?' * len(ISSUE_COLUMNS))}) IF NOT EXISTS"
    ),
    "issue_seen": (
        "UPDATE recon_issues_by_id SET last_seen = ?, detail = ? WHERE issue_id = ? IF EXISTS"
    ),
    "issue_get": f"SELECT {_ISSUE_LIST} FROM recon_issues_by_id WHERE issue_id = ?",  # noqa: S608
    "issue_resolve": (
        "UPDATE recon_issues_by_id SET status = ?, note = ?, resolved_at = ? "
        "WHERE issue_id = ? IF status = ?"
    ),
    # disputes
    "dispute_insert": (
        f"INSERT INTO disputes ({_DISPUTE_LIST}, writer) "  # noqa: S608
        f"VALUES ({', '.join('?' * len(DISPUTE_COLUMNS))}, ?) IF NOT EXISTS"
    ),
    "dispute_get": f"SELECT {_DISPUTE_LIST}, writer FROM disputes WHERE dispute_id = ?",  # noqa: S608
    "dispute_of_tx_put": (
        "INSERT INTO disputes_by_transaction (transaction_id, dispute_id) VALUES (?, ?)"
    ),
    "disputes_of_tx": (
        "SELECT dispute_id FROM disputes_by_transaction WHERE transaction_id = ? LIMIT 10000"
    ),
    # listings by day (issues by first_seen, disputes by raised_at)
    "by_day_put": "INSERT INTO backoffice_by_day (what, day, at, id) VALUES (?, ?, ?, ?)",
    "by_day_first": "SELECT at, id FROM backoffice_by_day WHERE what = ? AND day = ? LIMIT ?",
    "by_day_after": (
        "SELECT at, id FROM backoffice_by_day WHERE what = ? AND day = ? AND (at, id) > (?, ?) "
        "LIMIT ?"
    ),
    "days_put": "INSERT INTO backoffice_days (what, year, day) VALUES (?, ?, ?)",
    "days_of": "SELECT day FROM backoffice_days WHERE what = ? AND year = ? LIMIT 400",
    "years_put": "INSERT INTO backoffice_years (what, year) VALUES (?, ?)",
    "years": "SELECT year FROM backoffice_years WHERE what = ? LIMIT 10000",
}


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def _slot(posting_id: str) -> int:
    return zlib.crc32(posting_id.encode()) % SLOTS


def _cursor(values: Sequence[object]) -> str:
    return json.dumps(list(values))


def _uncursor(cursor: str, size: int) -> list[Any]:
    """Our own cursor back: [day] (a day's start) or [day, *position of ``size``]."""
    try:
        values = json.loads(cursor)
    except ValueError:
        values = None
    if not isinstance(values, list) or len(values) not in (1, 1 + size):
        raise ValueError(f"cursor: not a cursor this store gave ({cursor[:40]!r})")
    return values


def _claim_posting(row: Row) -> LedgerPosting:
    currency = row["currency"]
    return LedgerPosting(
        row["posting_id"],
        row["transaction_id"] or "",
        row["kind"] or "",
        row["rrn"] or "",
        currency,
        float(row["posted_at"]),
        LedgerPosting.lines_from_json(row["lines"], currency),
    )


def _issue(row: Row) -> ReconIssue:
    values: dict[str, Any] = {c: row.get(c) for c in ISSUE_COLUMNS}
    for c in ("first_seen", "last_seen", "resolved_at"):
        values[c] = float(values[c] or 0.0)
    for c in ("kind", "rrn", "transaction_id", "currency", "detail", "note"):
        values[c] = values[c] or ""
    values["status"] = IssueStatus(values["status"])
    return ReconIssue(**values)


def _dispute(row: Row) -> Dispute:
    values: dict[str, Any] = {c: row.get(c) for c in DISPUTE_COLUMNS}
    for c in ("raised_at", "representment_due", "response_due", "updated_at"):
        values[c] = float(values[c] or 0.0)
    values["amount_minor"] = int(values["amount_minor"] or 0)
    values["version"] = int(values["version"] or 1)
    for c in ("evidence", "note"):
        values[c] = values[c] or ""
    values["state"] = DisputeState(values["state"])
    return Dispute(**values)


def _dispute_values(d: Dispute) -> list[object]:
    values = (getattr(d, c) for c in DISPUTE_COLUMNS)
    return [v.value if isinstance(v, DisputeState) else v for v in values]


class CassandraLedgerMixin(CassandraHost):
    """Mixed into ``CassandraStore``: uses its ``_open()`` (the session's ``Cql``)."""

    _dispute_cas: dict[tuple[str, ...], Any] | None = None

    async def _lq(self) -> tuple[Cql, dict[str, Any]]:
        return await self._prepared("ledger", _STATEMENTS)

    # --- ledger -------------------------------------------------------------------------
    async def ledger_post(self, posting: LedgerPosting) -> bool:
        check_posting(posting)
        cql, _ = await self._lq()
        async with cql.serialised("ledger", posting.posting_id):
            return await cql.shielded(self._post(posting))

    async def ledger_post_many(self, postings: Sequence[LedgerPosting]) -> int:
        page = list(postings)
        for p in page:
            check_posting(p)
        unique: dict[str, LedgerPosting] = {}
        for p in page:  # a repeat within the page is the same posting, or a conflict
            seen = unique.setdefault(p.posting_id, p)
            if seen is not p and not seen.same_content(p):
                raise PostingConflict(f"posting {p.posting_id} twice in a page, other lines")
        if not unique:
            return 0
        cql, _ = await self._lq()
        return await cql.shielded(self._post_page(list(unique.values())))

    async def _post_page(self, page: list[LedgerPosting]) -> int:
        """The page in phases, each whole before the next (see the module docstring)."""
        cql, q = await self._lq()
        now = time.time()
        shared = {(p.currency, _day(p.posted_at)) for p in page}
        hints: list[tuple[Any, tuple[Any, ...]]] = [(q["day_put"], key) for key in shared]
        hints += [(q["currency_put"], (SHARD, c)) for c in {c for c, _ in shared}]
        for p in page:
            day = _day(p.posted_at)
            hints.append((q["pending_put"], (day, _slot(p.posting_id), p.posting_id, now)))
            if p.rrn:
                hints.append((q["rrn_put"], (p.rrn, p.posting_id)))
        await _bounded(cql, _batches(hints, BATCH))
        async with self._ledger_lock() as held:
            ids = [p.posting_id for p in page]
            parts = [ids[i : i + IN_KEYS] for i in range(0, len(ids), IN_KEYS)]
            found = await asyncio.gather(*(cql.run(q["claims_of"], (part,)) for part in parts))
            existing = {r["posting_id"]: r for rows in found for r in rows}
            fresh: list[LedgerPosting] = []
            to_finish: list[LedgerPosting] = []
            for p in page:
                row = existing.get(p.posting_id)
                if row is None:
                    fresh.append(p)
                    continue
                other = _claim_posting(row)
                if not other.same_content(p):
                    raise PostingConflict(f"posting {p.posting_id} exists with other lines")
                if not row.get("complete"):
                    to_finish.append(other)  # a writer died after its claim: finish it
            await held()  # still ours: nobody else wrote claims since the read
            claims = [
                (q["claim_plain"], (p.posting_id, p.transaction_id, p.kind, p.rrn, p.currency,
                                    p.posted_at, p.lines_json(), uuid.uuid4()))
                for p in fresh
            ]  # fmt: skip
            await _bounded(cql, _batches(claims, CLAIM_BATCH))
        await self._write_lines_many(fresh + to_finish)
        return len(fresh)

    @contextlib.asynccontextmanager
    async def _ledger_lock(self) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """The ledger's writer lock (a lease row, ``LOCK_TTL_S``): one page or posting
        claims at a time across processes. Yields ``held()``, which raises StoreUnavailable
        unless the lock is surely still ours (taken or renewed less than half its TTL ago)."""
        cql, q = await self._lq()
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + LOCK_WAIT_S
        for attempt in range(LOCK_ATTEMPTS):
            taken_at = time.monotonic()
            writer = uuid.uuid4()
            ok, _ = await cql.lwt(q["lock_take"], (LOCK, owner, writer, LOCK_TTL_S))
            if ok is None:
                row = await cql.serial(q["lock_get"], (LOCK,)) or {}
                ok = row.get("writer") == writer
            if ok:
                break
            if time.monotonic() > deadline:
                raise StoreUnavailable("ledger: the writer lock stayed taken (another writer)")
            await backoff(min(attempt + 1, 6))
        else:
            raise StoreUnavailable("ledger: the writer lock stayed taken (another writer)")

        async def held() -> None:
            if time.monotonic() - taken_at > LOCK_TTL_S / 2:
                raise StoreUnavailable("ledger: the writer lock may have lapsed mid-page")

        try:
            yield held
        finally:
            with contextlib.suppress(StoreUnavailable):  # else it lapses after its TTL
                await cql.lwt(q["lock_drop"], (LOCK, owner))

    async def _ledger_claim(self, p: LedgerPosting) -> tuple[bool, LedgerPosting | None]:
        """Step 2 for one posting: (claimed by us, the posting whose lines are to be written
        -- ours, or an incomplete one with the same content -- or None: complete already)."""
        cql, q = await self._lq()
        writer = uuid.uuid4()
        params = (
            p.posting_id, p.transaction_id, p.kind, p.rrn, p.currency, p.posted_at,
            p.lines_json(), writer,
        )  # fmt: skip
        ok, row = await cql.lwt(q["claim"], params)
        if ok is None:
            row = await cql.serial(q["claim_get"], (p.posting_id,)) or {}
            if not row:  # settled as not applied: nobody holds the id; claim again
                ok, row = await cql.lwt(q["claim"], params)
                if ok is None:
                    raise CasOutcomeUnknown(f"ledger posting {p.posting_id}: outcome unknown")
            else:
                ok = row.get("writer") == writer
        if ok:
            return True, p
        existing = _claim_posting(row)
        if not existing.same_content(p):
            raise PostingConflict(f"posting {p.posting_id} exists with other lines")
        return False, (None if row.get("complete") else existing)

    async def _write_lines_many(self, postings: list[LedgerPosting]) -> None:
        """Steps 3 and 4 for many claimed postings: lines in unlogged batches of one
        partition each (a posting's lines never split: all applied or none, and isolated),
        then the claims complete, then the markers gone."""
        if not postings:
            return
        cql, q = await self._lq()
        groups: dict[tuple[str, str], list[list[tuple[Any, tuple[Any, ...]]]]] = {}
        for p in postings:
            day = _day(p.posted_at)
            rows = [
                (q["line_put"], (p.currency, day, p.posted_at, p.posting_id, i, x.account,
                                 x.amount_minor, p.transaction_id))
                for i, x in enumerate(p.lines)
            ]  # fmt: skip
            chunks = groups.setdefault((p.currency, day), [[]])
            if len(chunks[-1]) + len(rows) > PARTITION_ROWS:
                chunks.append([])
            chunks[-1].extend(rows)
        await _bounded(cql, [_batch(c) for chunks in groups.values() for c in chunks if c])
        done = [(q["claim_done"], (p.posting_id,)) for p in postings]
        await _bounded(cql, _batches(done, BATCH))
        drops = [
            (q["pending_drop"], (_day(p.posted_at), _slot(p.posting_id), p.posting_id))
            for p in postings
        ]
        await _bounded(cql, _batches(drops, BATCH))

    async def _post(self, p: LedgerPosting) -> bool:
        """One posting: its hints and marker, its claim, its lines (steps 1-4)."""
        cql, q = await self._lq()
        day = _day(p.posted_at)
        hints = [
            cql.run(q["pending_put"], (day, _slot(p.posting_id), p.posting_id, time.time())),
            cql.run(q["day_put"], (p.currency, day)),
            cql.run(q["currency_put"], (SHARD, p.currency)),
        ]
        if p.rrn:
            hints.append(cql.run(q["rrn_put"], (p.rrn, p.posting_id)))
        await asyncio.gather(*hints)
        async with self._ledger_lock():
            new, to_write = await self._ledger_claim(p)
        if to_write is not None:
            await self._write_lines(to_write)
        return new

    async def _write_lines(self, p: LedgerPosting) -> None:
        """Steps 3 and 4 (idempotent): the claim's lines, the claim complete, marker gone."""
        cql, q = await self._lq()
        day = _day(p.posted_at)
        rows = [
            (p.currency, day, p.posted_at, p.posting_id, i, x.account, x.amount_minor,
             p.transaction_id)
            for i, x in enumerate(p.lines)
        ]  # fmt: skip
        await asyncio.gather(*(cql.run(q["line_put"], r) for r in rows))
        await cql.run(q["claim_done"], (p.posting_id,))
        await cql.run(q["pending_drop"], (day, _slot(p.posting_id), p.posting_id))

    async def _finish_pending(self, day: str) -> None:
        """Finish every posting of ``day`` a writer left incomplete (its markers)."""
        await asyncio.gather(*(self._finish_slot(day, slot) for slot in range(SLOTS)))

    async def _finish_slot(self, day: str, slot: int) -> None:
        cql, q = await self._lq()
        after = ""
        for _page in range(MAX_PAGES):
            rows = await cql.run(q["pending_list"], (day, slot, after, PAGE))
            for marker in rows:
                pid = marker["posting_id"]
                async with cql.serialised("ledger", pid):
                    claim = await cql.serial(q["claim_get"], (pid,))
                    if claim is None:
                        if float(marker["created_at"] or 0.0) < time.time() - ORPHAN_S:
                            await cql.run(q["pending_drop"], (day, slot, pid))
                        continue
                    if claim.get("complete"):
                        await cql.run(q["pending_drop"], (day, slot, pid))
                    else:
                        await cql.shielded(self._write_lines(_claim_posting(claim)))
            if len(rows) < PAGE:
                return
            after = rows[-1]["posting_id"]

    async def ledger_get(self, posting_id: str) -> LedgerPosting | None:
        cql, q = await self._lq()
        rows = await cql.run(q["claim_get"], (posting_id,))
        return _claim_posting(rows[0]) if rows else None

    async def ledger_entries(self, currency: str, until: float | None = None) -> list[LedgerEntry]:
        return await _all(lambda c: self.ledger_entries_page(currency, until, c, PAGE))

    async def ledger_entries_page(
        self, currency: str, until: float | None, cursor: str, limit: int
    ) -> tuple[list[LedgerEntry], str]:
        """A page within one day's partition: from the day's start (finishing its pending
        postings first) or past the cursor's position; then the next day's start."""
        check_limit(limit)
        cql, q = await self._lq()
        upto = float("inf") if until is None else until
        last_day = "9999-12-31" if until is None else _day(until)
        days = sorted(d for d in (r["day"] for r in await cql.run(q["days"], (currency,))))
        days = [d for d in days if d <= last_day]
        if cursor:
            at = _uncursor(cursor, 3)
            day = at[0]
        elif days:
            day, at = days[0], [days[0]]
        else:
            return [], ""
        if len(at) == 1:
            await self._finish_pending(day)
            rows = await cql.run(q["lines_first"], (currency, day, upto, limit))
        else:
            rows = await cql.run(q["lines_after"], (currency, day, *at[1:], upto, limit))
        found = [
            LedgerEntry(
                r["posting_id"], int(r["line_no"]), r["account"], currency,
                int(r["amount_minor"]), float(r["posted_at"]), r["transaction_id"] or "",
            )
            for r in rows
        ]  # fmt: skip
        if len(rows) >= limit:
            last = rows[-1]
            return found, _cursor([day, last["posted_at"], last["posting_id"], last["line_no"]])
        later = [d for d in days if d > day]
        return found, _cursor([later[0]]) if later else ""

    async def ledger_currencies(self) -> list[str]:
        cql, q = await self._lq()
        return sorted(r["currency"] for r in await cql.run(q["currencies"], (SHARD,)))

    async def ledger_postings_for_rrn(self, rrn: str) -> list[LedgerPosting]:
        if not rrn:
            return []
        cql, q = await self._lq()
        ids = [r["posting_id"] for r in await cql.run(q["rrn_get"], (rrn,))]
        postings = []
        for pid in ids:
            rows = await cql.run(q["claim_get"], (pid,))
            if not rows or rows[0]["rrn"] != rrn:
                continue
            posting = _claim_posting(rows[0])
            if not rows[0].get("complete"):  # a writer died after its claim: finish it
                async with cql.serialised("ledger", pid):
                    await cql.shielded(self._write_lines(posting))
            postings.append(posting)
        return sorted(postings, key=lambda p: (p.posted_at, p.posting_id))

    # --- reconciliation issues ------------------------------------------------------------
    async def recon_upsert(self, issue: ReconIssue, now: float) -> bool:
        cql, q = await self._lq()
        values = (
            issue.issue_id, issue.type, issue.kind, issue.rrn, issue.transaction_id,
            issue.currency, issue.detail, IssueStatus.OPEN.value, "", now, now, 0.0,
        )  # fmt: skip
        async with cql.serialised("issue", issue.issue_id):
            ok, row = await cql.lwt(q["issue_insert"], values)
            if ok is None:
                row = await cql.serial(q["issue_get"], (issue.issue_id,)) or {}
                ok = bool(row) and row.get("first_seen") == now and row.get("last_seen") == now
            first_seen = now if ok else float(row.get("first_seen") or now)
            # Listed once its row is in; any later upsert writes the same entry again (a
            # writer killed in between leaves it to the next run's upsert).
            await self._list_put("issue", first_seen, issue.issue_id)
            if ok:
                return True
            await cql.lwt(q["issue_seen"], (now, issue.detail, issue.issue_id))
            return False

    async def recon_get(self, issue_id: str) -> ReconIssue | None:
        cql, q = await self._lq()
        rows = await cql.run(q["issue_get"], (issue_id,))
        return _issue(rows[0]) if rows else None

    async def recon_issues(self, status: IssueStatus | None = None) -> list[ReconIssue]:
        return await _all(lambda c: self.recon_issues_page(status, c, PAGE))

    async def recon_issues_page(
        self, status: IssueStatus | None, cursor: str, limit: int
    ) -> tuple[list[ReconIssue], str]:
        check_limit(limit)
        cql, q = await self._lq()
        entries, next_cursor = await self._list_page("issue", cursor, limit)
        rows = await asyncio.gather(*(cql.run(q["issue_get"], (i,)) for _, i in entries))
        found = []
        for (at, _), row in zip(entries, rows, strict=True):
            if not row:
                continue
            issue = _issue(row[0])
            if issue.first_seen == at and (status is None or issue.status is IssueStatus(status)):
                found.append(issue)
        return found, next_cursor

    async def recon_set_status(
        self, issue_id: str, status: IssueStatus, note: str, now: float
    ) -> ReconIssue:
        status = IssueStatus(status)
        if status is IssueStatus.OPEN:
            raise ValueError("status: an issue is resolved as RESOLVED or IGNORED")
        cql, q = await self._lq()
        params = (status.value, note, now, issue_id, IssueStatus.OPEN.value)
        async with cql.serialised("issue", issue_id):
            ok, _ = await cql.lwt(q["issue_resolve"], params)
            current = await cql.serial(q["issue_get"], (issue_id,))
            if current is None:
                raise NotFound(f"no reconciliation issue {issue_id}")
            issue = _issue(current)
            if ok is False or (ok is None and (issue.status, issue.note) != (status, note)):
                raise ValueError(f"issue {issue_id} is {issue.status}, not OPEN")
            return issue

    # --- disputes ---------------------------------------------------------------------------
    async def dispute_create(self, dispute: Dispute) -> tuple[Dispute, bool]:
        cql, q = await self._lq()
        writer = uuid.uuid4()
        async with cql.serialised("dispute", dispute.dispute_id):
            await asyncio.gather(
                self._list_put("dispute", dispute.raised_at, dispute.dispute_id),
                cql.run(q["dispute_of_tx_put"], (dispute.transaction_id, dispute.dispute_id)),
            )
            ok, row = await cql.lwt(q["dispute_insert"], (*_dispute_values(dispute), writer))
            if ok is None or not ok:
                row = await cql.serial(q["dispute_get"], (dispute.dispute_id,)) or {}
                if not row:
                    raise CasOutcomeUnknown(f"dispute {dispute.dispute_id}: outcome unknown")
                ok = row.get("writer") == writer
            return (dispute, True) if ok else (_dispute(row), False)

    async def dispute_get(self, dispute_id: str) -> Dispute | None:
        cql, q = await self._lq()
        rows = await cql.run(q["dispute_get"], (dispute_id,))
        return _dispute(rows[0]) if rows else None

    async def dispute_transition(
        self,
        dispute_id: str,
        from_state: DisputeState,
        to_state: DisputeState,
        changes: DisputeChanges,
    ) -> Dispute:
        columns = check_dispute_transition(from_state, to_state, changes)
        cql, q = await self._lq()
        names = tuple(columns)
        cache = self._dispute_cas = self._dispute_cas or {}
        stmt = cache.get(names)
        if stmt is None:
            sets = "".join(f", {n} = ?" for n in names)
            text = (
                f"UPDATE disputes SET state = ?{sets}, version = ?, writer = ? "  # noqa: S608
                "WHERE dispute_id = ? IF state = ? AND version = ?"
            )
            stmt = cache[names] = await asyncio.to_thread(cql.session.prepare, text)
        async with cql.serialised("dispute", dispute_id):
            current = await cql.serial(q["dispute_get"], (dispute_id,))
            if current is None:
                raise NotFound(f"no dispute {dispute_id}")
            row = _dispute(current)
            if row.state is not from_state:
                raise DisputeConflict(row)
            writer = uuid.uuid4()
            new = dataclasses.replace(changes.applied(row, to_state), version=row.version + 1)
            params = (
                to_state.value, *columns.values(), new.version, writer, dispute_id,
                from_state.value, row.version,
            )  # fmt: skip
            ok, _ = await cql.lwt(stmt, params)
            if ok is None:
                after = await cql.serial(q["dispute_get"], (dispute_id,)) or {}
                ok = after.get("writer") == writer
            if not ok:
                latest = await cql.serial(q["dispute_get"], (dispute_id,))
                raise DisputeConflict(_dispute(latest or current))
            return new

    async def disputes(self, state: DisputeState | None = None) -> list[Dispute]:
        return await _all(lambda c: self.disputes_page(state, c, PAGE))

    async def disputes_of(self, transaction_id: str) -> list[Dispute]:
        cql, q = await self._lq()
        ids = [r["dispute_id"] for r in await cql.run(q["disputes_of_tx"], (transaction_id,))]
        found = await asyncio.gather(*(self.dispute_get(i) for i in ids))
        out = [d for d in found if d is not None and d.transaction_id == transaction_id]
        return sorted(out, key=lambda d: (d.raised_at, d.dispute_id))

    async def disputes_page(
        self, state: DisputeState | None, cursor: str, limit: int
    ) -> tuple[list[Dispute], str]:
        check_limit(limit)
        entries, next_cursor = await self._list_page("dispute", cursor, limit)
        got = await asyncio.gather(*(self.dispute_get(i) for _, i in entries))
        found = [
            d
            for (at, _), d in zip(entries, got, strict=True)
            if d is not None and d.raised_at == at and (state is None or d.state is state)
        ]
        return found, next_cursor

    # --- listings by day ----------------------------------------------------------------
    async def _list_put(self, what: str, at: float, item_id: str) -> None:
        cql, q = await self._lq()
        day = _day(at)
        year = int(day[:4])
        await asyncio.gather(
            cql.run(q["years_put"], (what, year)),
            cql.run(q["days_put"], (what, year, day)),
            cql.run(q["by_day_put"], (what, day, at, item_id)),
        )

    async def _days_after(self, what: str, day: str | None) -> str | None:
        """The first day with entries after ``day`` (the first of all when None)."""
        cql, q = await self._lq()
        years = sorted(int(r["year"]) for r in await cql.run(q["years"], (what,)))
        for year in years:
            if day is not None and year < int(day[:4]):
                continue
            days = sorted(str(r["day"]) for r in await cql.run(q["days_of"], (what, year)))
            later: list[str] = [d for d in days if day is None or d > day]
            if later:
                return later[0]
        return None

    async def _list_page(
        self, what: str, cursor: str, limit: int
    ) -> tuple[list[tuple[float, str]], str]:
        """(at, id) entries of one day, from its start or past the cursor; the next cursor."""
        cql, q = await self._lq()
        if cursor:
            at = _uncursor(cursor, 2)
            day: str | None = at[0]
        else:
            day = await self._days_after(what, None)
            at = [day]
        if day is None:
            return [], ""
        if len(at) == 1:
            rows = await cql.run(q["by_day_first"], (what, day, limit))
        else:
            rows = await cql.run(q["by_day_after"], (what, day, float(at[1]), str(at[2]), limit))
        entries = [(float(r["at"]), r["id"]) for r in rows]
        if len(rows) >= limit:
            return entries, _cursor([day, *entries[-1]])
        following = await self._days_after(what, day)
        return entries, _cursor([following]) if following else ""


def _batch(statements: list[tuple[Any, tuple[Any, ...]]]) -> BatchStatement:
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    for stmt, params in statements:
        batch.add(stmt, params)
    return batch


def _batches(statements: list[tuple[Any, tuple[Any, ...]]], size: int) -> list[BatchStatement]:
    """Unlogged batches of ``size`` writes (of any partitions): a round trip each, not an
    atomic unit -- every write here is idempotent, so a failed batch is written again by a
    rerun."""
    return [_batch(statements[i : i + size]) for i in range(0, len(statements), size)]


async def _bounded(cql: Cql, batches: list[BatchStatement]) -> None:
    """Send ``batches`` with at most IN_FLIGHT outstanding."""
    for start in range(0, len(batches), IN_FLIGHT):
        await asyncio.gather(*(cql.run(b, None) for b in batches[start : start + IN_FLIGHT]))


async def _all(page: Callable[[str], Awaitable[tuple[list[T], str]]]) -> list[T]:
    """Every page of a listing as one list (the whole-list reads of small data)."""
    out: list[T] = []
    cursor = ""
    for _ in range(MAX_PAGES * 100):
        found, cursor = await page(cursor)
        out.extend(found)
        if not cursor:
            return out
    raise StoreUnavailable("a listing did not end")


__all__ = ["CassandraLedgerMixin"]
