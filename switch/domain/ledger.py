"""Ledger postings, reconciliation issues and disputes: the back office's records.

Ledger postings are append-only and idempotent on ``posting_id``: a second post of the same id
writes nothing and answers False. A posting is balanced (its lines sum to zero), has one
currency (every line in the posting's currency) and at least two non-zero lines; anything else
is refused with ``UnbalancedPosting`` before a backend is touched.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass
from typing import TypedDict, Unpack

from payswitch.money import exponent
from switch.domain.columns import field_names, set_columns
from switch.domain.errors import StoreError


class UnbalancedPosting(ValueError):
    """A posting that does not sum to zero, mixes currencies or is otherwise malformed."""


class PostingConflict(StoreError):
    """A posting id already holds other lines: two different events were given one id."""


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """One side of a posting: ``amount_minor`` > 0 debits ``account``, < 0 credits it."""

    account: str
    currency: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class LedgerPosting:
    """One balanced posting, keyed by its source event (see ``switch.backoffice.ledger.events``)."""

    posting_id: str
    transaction_id: str
    kind: str
    rrn: str
    currency: str
    posted_at: float
    lines: tuple[LedgerLine, ...]

    def lines_json(self) -> str:
        return json.dumps([[x.account, x.amount_minor] for x in self.lines])

    @staticmethod
    def lines_from_json(text: str, currency: str) -> tuple[LedgerLine, ...]:
        return tuple(LedgerLine(a, currency, int(m)) for a, m in json.loads(text))

    def same_content(self, other: LedgerPosting) -> bool:
        return (self.transaction_id, self.kind, self.currency, self.lines) == (
            other.transaction_id,
            other.kind,
            other.currency,
            other.lines,
        )


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One stored line, as the balance queries read it."""

    posting_id: str
    line_no: int
    account: str
    currency: str
    amount_minor: int
    posted_at: float
    transaction_id: str


def check_posting(p: LedgerPosting) -> None:
    if not p.posting_id or not p.transaction_id or not p.kind:
        raise UnbalancedPosting("posting_id, transaction_id and kind are required")
    try:
        exponent(p.currency)
    except ValueError as exc:
        raise UnbalancedPosting(str(exc)) from None
    if len(p.lines) < 2:
        raise UnbalancedPosting(f"posting {p.posting_id} needs at least two lines")
    for line in p.lines:
        if line.currency != p.currency:
            raise UnbalancedPosting(
                f"posting {p.posting_id} mixes {line.currency} into a {p.currency} posting"
            )
        if not isinstance(line.amount_minor, int) or isinstance(line.amount_minor, bool):
            raise UnbalancedPosting("line amounts must be integers (minor units)")
        if line.amount_minor == 0 or not line.account:
            raise UnbalancedPosting("every line needs an account and a non-zero amount")
    total = sum(x.amount_minor for x in p.lines)
    if total != 0:
        raise UnbalancedPosting(f"posting {p.posting_id} does not balance ({total:+d})")


class IssueStatus(enum.StrEnum):
    OPEN = "OPEN"
    RESOLVED = "RESOLVED"
    IGNORED = "IGNORED"


@dataclass(frozen=True, slots=True)
class ReconIssue:
    """One discrepancy; ``issue_id`` is derived from (type, kind, rrn) so a re-run finds it
    again instead of listing it twice. ``detail`` is a JSON object (amounts per source...)."""

    issue_id: str
    type: str
    kind: str
    rrn: str
    transaction_id: str
    currency: str
    detail: str
    status: IssueStatus = IssueStatus.OPEN
    note: str = ""
    first_seen: float = 0.0
    last_seen: float = 0.0
    resolved_at: float = 0.0

    def copy(self, **changes: Unpack[IssueFields]) -> ReconIssue:
        return dataclasses.replace(self, **changes)


class IssueFields(TypedDict, total=False):
    """Fields of a ``ReconIssue`` by name, any of them (``ReconIssue.copy``'s changes)."""

    issue_id: str
    type: str
    kind: str
    rrn: str
    transaction_id: str
    currency: str
    detail: str
    status: IssueStatus
    note: str
    first_seen: float
    last_seen: float
    resolved_at: float


class DisputeState(enum.StrEnum):
    CHARGEBACK = "CHARGEBACK"
    REPRESENTED = "REPRESENTED"
    WON = "WON"
    LOST = "LOST"
    ACCEPTED = "ACCEPTED"


DISPUTE_TRANSITIONS: dict[DisputeState, frozenset[DisputeState]] = {
    DisputeState.CHARGEBACK: frozenset({DisputeState.REPRESENTED, DisputeState.ACCEPTED}),
    DisputeState.REPRESENTED: frozenset({DisputeState.WON, DisputeState.LOST}),
    DisputeState.WON: frozenset(),
    DisputeState.LOST: frozenset(),
    DisputeState.ACCEPTED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Dispute:
    """A chargeback and its cycle; ``dispute_id`` is the issuer's chargeback id."""

    dispute_id: str
    transaction_id: str
    rrn: str
    merchant_id: str
    acquirer_id: str
    issuer_id: str
    amount_minor: int
    currency: str
    reason_code: str
    state: DisputeState
    raised_at: float
    representment_due: float
    response_due: float = 0.0
    evidence: str = ""
    note: str = ""
    updated_at: float = 0.0
    version: int = 1

    def copy(self, **changes: Unpack[DisputeFields]) -> Dispute:
        return dataclasses.replace(self, **changes)


class DisputeFields(TypedDict, total=False):
    """Fields of a ``Dispute`` by name, any of them (``Dispute.copy``'s changes)."""

    dispute_id: str
    transaction_id: str
    rrn: str
    merchant_id: str
    acquirer_id: str
    issuer_id: str
    amount_minor: int
    currency: str
    reason_code: str
    state: DisputeState
    raised_at: float
    representment_due: float
    response_due: float
    evidence: str
    note: str
    updated_at: float
    version: int


DISPUTE_COLUMNS = tuple(f.name for f in dataclasses.fields(Dispute))
ISSUE_COLUMNS = tuple(f.name for f in dataclasses.fields(ReconIssue))


@dataclass(frozen=True, slots=True)
class DisputeChanges:
    """What a dispute transition changes besides ``state``, typed (None: left as it is)."""

    response_due: float | None = None
    evidence: str | None = None
    note: str | None = None
    updated_at: float | None = None

    def columns(self) -> dict[str, object]:
        return set_columns(self, _DISPUTE_CHANGE_FIELDS)

    def applied(self, d: Dispute, state: DisputeState) -> Dispute:
        """``d`` moved to ``state`` with these changes (the version is the store's)."""
        return dataclasses.replace(d, state=state, **self.columns())  # type: ignore[arg-type]


_DISPUTE_CHANGE_FIELDS = field_names(DisputeChanges)


class DisputeConflict(StoreError):
    """A dispute transition found another state; ``current`` is the dispute as it is now."""

    def __init__(self, current: Dispute) -> None:
        super().__init__(f"dispute {current.dispute_id} is {current.state}")
        self.current = current


def check_dispute_transition(
    from_state: DisputeState, to_state: DisputeState, changes: DisputeChanges
) -> dict[str, object]:
    """Validate a dispute transition before any backend runs it; its changed columns."""
    if to_state not in DISPUTE_TRANSITIONS[from_state]:
        raise ValueError(f"dispute {from_state} -> {to_state} is not a transition")
    if not isinstance(changes, DisputeChanges):
        raise TypeError("dispute_transition: changes must be a DisputeChanges")
    return changes.columns()
