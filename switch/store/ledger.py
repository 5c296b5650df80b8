"""The back office in the store: ledger postings, reconciliation issues and disputes.

Every backend implements all three (``sqlite/ledger.py``, ``cassandra/ledger.py``) and passes
the same contract tests (tests/store/test_store_ledger.py). Postings are append-only and
idempotent on ``posting_id`` and checked before a backend is touched
(``switch.domain.ledger``).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence

from switch.domain.ledger import (
    Dispute,
    DisputeChanges,
    DisputeState,
    IssueStatus,
    LedgerEntry,
    LedgerPosting,
    ReconIssue,
)


class LedgerStore(abc.ABC):
    """The double-entry ledger: append-only, idempotent postings and balances over time."""

    @abc.abstractmethod
    async def ledger_post(self, posting: LedgerPosting) -> bool:
        """Append ``posting`` unless its id is there: True when written by this call.
        UnbalancedPosting first; PostingConflict when the id holds other lines."""

    @abc.abstractmethod
    async def ledger_post_many(self, postings: Sequence[LedgerPosting]) -> int:
        """``ledger_post`` for a page of postings in one call: how many this call wrote.
        Every posting is checked first (UnbalancedPosting: nothing written); ids posted
        before are skipped as by ``ledger_post`` (PostingConflict for other lines: SQLite
        then writes none of the page, Cassandra may have written others of it, each whole).
        SQLite: one transaction; Cassandra: the postings concurrently, each with
        ``ledger_post``'s claim/complete/pending steps."""

    @abc.abstractmethod
    async def ledger_get(self, posting_id: str) -> LedgerPosting | None: ...

    @abc.abstractmethod
    async def ledger_entries(self, currency: str, until: float | None = None) -> list[LedgerEntry]:
        """Every line in ``currency`` posted at or before ``until`` (all when None), in
        posting order."""

    @abc.abstractmethod
    async def ledger_entries_page(
        self, currency: str, until: float | None, cursor: str, limit: int
    ) -> tuple[list[LedgerEntry], str]:
        """``ledger_entries`` a page at a time, in the same order."""

    @abc.abstractmethod
    async def ledger_currencies(self) -> list[str]:
        """Currencies with at least one posting, sorted."""

    @abc.abstractmethod
    async def ledger_postings_for_rrn(self, rrn: str) -> list[LedgerPosting]:
        """Postings whose source carries ``rrn`` (a chargeback finds its sale by RRN)."""


class ReconStore(abc.ABC):
    """Reconciliation issues: found by the recon engine, worked by operators."""

    @abc.abstractmethod
    async def recon_upsert(self, issue: ReconIssue, now: float) -> bool:
        """Insert ``issue`` OPEN (True), or, when its id exists, only refresh ``last_seen`` and
        ``detail`` (False): status and note an operator set are kept."""

    @abc.abstractmethod
    async def recon_get(self, issue_id: str) -> ReconIssue | None:
        """One issue as stored (the job reads back what it found, not every issue ever)."""

    @abc.abstractmethod
    async def recon_issues(self, status: IssueStatus | None = None) -> list[ReconIssue]: ...

    @abc.abstractmethod
    async def recon_issues_page(
        self, status: IssueStatus | None, cursor: str, limit: int
    ) -> tuple[list[ReconIssue], str]:
        """``recon_issues`` a page at a time, in (first_seen, issue_id) order."""

    @abc.abstractmethod
    async def recon_set_status(
        self, issue_id: str, status: IssueStatus, note: str, now: float
    ) -> ReconIssue:
        """OPEN -> RESOLVED | IGNORED with an operator note. NotFound for an unknown id;
        ValueError when the issue is not OPEN or the status is not a resolution."""


class DisputeStore(abc.ABC):
    """Disputes (chargebacks and representments) with their state machine."""

    @abc.abstractmethod
    async def dispute_create(self, dispute: Dispute) -> tuple[Dispute, bool]:
        """Insert unless ``dispute_id`` exists: (the stored dispute, created now?)."""

    @abc.abstractmethod
    async def dispute_get(self, dispute_id: str) -> Dispute | None: ...

    @abc.abstractmethod
    async def dispute_transition(
        self,
        dispute_id: str,
        from_state: DisputeState,
        to_state: DisputeState,
        changes: DisputeChanges,
    ) -> Dispute:
        """Compare-and-set on state; DisputeConflict(current) or NotFound."""

    @abc.abstractmethod
    async def disputes(self, state: DisputeState | None = None) -> list[Dispute]: ...

    @abc.abstractmethod
    async def disputes_of(self, transaction_id: str) -> list[Dispute]:
        """The disputes of one sale, by (raised_at, dispute_id): what is left to dispute is
        read without listing every dispute."""

    @abc.abstractmethod
    async def disputes_page(
        self, state: DisputeState | None, cursor: str, limit: int
    ) -> tuple[list[Dispute], str]:
        """``disputes`` a page at a time, in (raised_at, dispute_id) order."""


def check_limit(limit: int) -> None:
    """A page's ``limit`` (ValueError naming it, before anything is read)."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be a positive integer, not {limit!r}")


PAGE = 1_000
MAX_PAGES = 10_000_000  # a bound on every reader's loop: far past any day


async def ledger_entry_pages(
    store: LedgerStore, currency: str, until: float | None = None, limit: int = PAGE
) -> AsyncIterator[list[LedgerEntry]]:
    """Every line of ``currency`` up to ``until``, a page at a time."""
    cursor = ""
    for _ in range(MAX_PAGES):
        found, cursor = await store.ledger_entries_page(currency, until, cursor, limit)
        if found:
            yield found
        if not cursor:
            return


async def recon_issue_pages(
    store: ReconStore, status: IssueStatus | None = None, limit: int = PAGE
) -> AsyncIterator[list[ReconIssue]]:
    """Every reconciliation issue (of ``status``), a page at a time."""
    cursor = ""
    for _ in range(MAX_PAGES):
        found, cursor = await store.recon_issues_page(status, cursor, limit)
        if found:
            yield found
        if not cursor:
            return


async def dispute_pages(
    store: DisputeStore, state: DisputeState | None = None, limit: int = PAGE
) -> AsyncIterator[list[Dispute]]:
    """Every dispute (in ``state``), a page at a time."""
    cursor = ""
    for _ in range(MAX_PAGES):
        found, cursor = await store.disputes_page(state, cursor, limit)
        if found:
            yield found
        if not cursor:
            return
