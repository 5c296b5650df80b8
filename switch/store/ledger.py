"""Store records and interface of the ledger, reconciliation issues and disputes.

A mixin of ``Store`` (base.py): the methods are not abstract, so that a backend without them
still loads; every backend in this repository implements them (``sqlite_ledger.py``,
``cassandra_ledger.py``) and passes the same contract tests (tests/store/test_store_ledger.py).

Ledger postings are append-only and idempotent on ``posting_id``: a second post of the same id
writes nothing and answers False. A posting is balanced (its lines sum to zero), has one
currency (every line in the posting's currency) and at least two non-zero lines; anything else
is refused with ``UnbalancedPosting`` before a backend is touched.
"""

from __future__ import annotations

from switch.domain.ledger import (
    Dispute,
    DisputeState,
    IssueStatus,
    LedgerEntry,
    LedgerPosting,
    ReconIssue,
)


class LedgerStoreApi:
    """Ledger, reconciliation and dispute storage (mixed into ``Store``)."""

    # --- ledger -------------------------------------------------------------------------
    async def ledger_post(self, posting: LedgerPosting) -> bool:
        """Append ``posting`` unless its id is there: True when written by this call.
        UnbalancedPosting first; PostingConflict when the id holds other lines."""
        raise NotImplementedError(f"{type(self).__name__} has no ledger")

    async def ledger_get(self, posting_id: str) -> LedgerPosting | None:
        raise NotImplementedError(f"{type(self).__name__} has no ledger")

    async def ledger_entries(self, currency: str, until: float | None = None) -> list[LedgerEntry]:
        """Every line in ``currency`` posted at or before ``until`` (all when None), in
        posting order."""
        raise NotImplementedError(f"{type(self).__name__} has no ledger")

    async def ledger_currencies(self) -> list[str]:
        """Currencies with at least one posting, sorted."""
        raise NotImplementedError(f"{type(self).__name__} has no ledger")

    async def ledger_postings_for_rrn(self, rrn: str) -> list[LedgerPosting]:
        """Postings whose source carries ``rrn`` (a chargeback finds its sale by RRN)."""
        raise NotImplementedError(f"{type(self).__name__} has no ledger")

    # --- reconciliation issues ------------------------------------------------------------
    async def recon_upsert(self, issue: ReconIssue, now: float) -> bool:
        """Insert ``issue`` OPEN (True), or, when its id exists, only refresh ``last_seen`` and
        ``detail`` (False): status and note an operator set are kept."""
        raise NotImplementedError(f"{type(self).__name__} has no reconciliation issues")

    async def recon_issues(self, status: IssueStatus | None = None) -> list[ReconIssue]:
        raise NotImplementedError(f"{type(self).__name__} has no reconciliation issues")

    async def recon_set_status(
        self, issue_id: str, status: IssueStatus, note: str, now: float
    ) -> ReconIssue:
        """OPEN -> RESOLVED | IGNORED with an operator note. NotFound for an unknown id;
        ValueError when the issue is not OPEN or the status is not a resolution."""
        raise NotImplementedError(f"{type(self).__name__} has no reconciliation issues")

    # --- disputes ---------------------------------------------------------------------------
    async def dispute_create(self, dispute: Dispute) -> tuple[Dispute, bool]:
        """Insert unless ``dispute_id`` exists: (the stored dispute, created now?)."""
        raise NotImplementedError(f"{type(self).__name__} has no disputes")

    async def dispute_get(self, dispute_id: str) -> Dispute | None:
        raise NotImplementedError(f"{type(self).__name__} has no disputes")

    async def dispute_transition(
        self,
        dispute_id: str,
        from_state: DisputeState,
        to_state: DisputeState,
        changes: dict[str, object],
    ) -> Dispute:
        """Compare-and-set on state; DisputeConflict(current) or NotFound."""
        raise NotImplementedError(f"{type(self).__name__} has no disputes")

    async def disputes(self, state: DisputeState | None = None) -> list[Dispute]:
        raise NotImplementedError(f"{type(self).__name__} has no disputes")
