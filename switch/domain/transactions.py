"""The switch's transaction: its states, the state machine, and the checks every store applies.

The machine is ARCHITECTURE.md's plus the transitions it leaves open (see ``TRANSITIONS`` and
``TYPED_TRANSITIONS``). Every state change is a compare-and-set that ``check_cas`` validates
before any backend runs it, so the invariant is written once here and holds for every backend.
No card data beyond the token and masked PAN is ever part of a transaction.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict, Unpack, cast

from switch.domain.columns import field_names, set_columns
from switch.domain.errors import StoreError

if TYPE_CHECKING:
    pass


class TxState(enum.StrEnum):
    """The lifecycle of ARCHITECTURE.md ("State"); names match payswitch.v1.TransactionState."""

    RECEIVED = "RECEIVED"
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    DECLINED = "DECLINED"
    UNKNOWN = "UNKNOWN"
    REVERSAL_PENDING = "REVERSAL_PENDING"
    REVERSED = "REVERSED"
    CAPTURED = "CAPTURED"
    SETTLED = "SETTLED"
    VOIDED = "VOIDED"
    STOOD_IN = "STOOD_IN"
    ADVISED = "ADVISED"


S = TxState

# The state machine. RECEIVED -> DECLINED covers declines the switch gives before calling
# out; UNKNOWN -> APPROVED | DECLINED is a later confirmation of the outcome; APPROVED ->
# REVERSAL_PENDING is a void whose reversal could not be confirmed at once.
TRANSITIONS: Mapping[TxState, frozenset[TxState]] = {
    S.RECEIVED: frozenset({S.PENDING, S.DECLINED}),
    S.PENDING: frozenset({S.APPROVED, S.DECLINED, S.UNKNOWN, S.STOOD_IN}),
    S.UNKNOWN: frozenset({S.REVERSAL_PENDING, S.APPROVED, S.DECLINED}),
    S.REVERSAL_PENDING: frozenset({S.REVERSED}),
    S.APPROVED: frozenset({S.CAPTURED, S.VOIDED, S.REVERSAL_PENDING}),
    S.CAPTURED: frozenset({S.SETTLED}),
    S.STOOD_IN: frozenset({S.ADVISED}),
    S.DECLINED: frozenset(),
    S.REVERSED: frozenset(),
    S.SETTLED: frozenset(),
    S.VOIDED: frozenset(),
    S.ADVISED: frozenset(),
}

FINAL_STATES = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


class TxType(enum.StrEnum):
    AUTHORIZATION = "AUTHORIZATION"
    REFUND = "REFUND"


@dataclass(slots=True)
class Transaction:
    """One transaction as the switch records it (no PAN: token and masked PAN only)."""

    id: str
    type: TxType
    state: TxState
    terminal_id: str
    merchant_id: str
    stan: int
    local_date: str  # YYYY-MM-DD, the terminal's: part of the duplicate-transmission key
    local_time: str  # the terminal's ISO 8601 local date-time as sent
    amount_minor: int
    currency: str
    card_token: str
    masked_pan: str
    bin: str  # routing BIN for follow-up messages
    scheme: str
    rrn: str
    created_at: float  # Unix seconds
    updated_at: float
    deadline_at: float  # when the terminal stops waiting; recovery looks past it
    acquirer_id: str = ""
    captured_minor: int = 0
    refunded_minor: int = 0
    response_code: str = ""  # ISO 8583 two digits, e.g. "00", "51"
    auth_code: str = ""
    original_id: str = ""  # a refund's authorization
    idempotency_key: str = ""
    entry_mode: str = ""
    mcc: str = ""
    # Cross-border (issue 16, payswitch.fx): the scheme's conversion into the card's billing
    # currency. On an authorization, its billing amount, rate (8-place decimal text) and table;
    # what of it was captured in the billing currency (the issuer's figure). On
    # a refund row, the billing amount credited at the day's rate. All empty/0: no conversion.
    # A DCC sale (dcc_markup_bps > 0) is in the cardholder's currency (amount_minor, currency:
    # no scheme conversion, billing_* empty); fx_rate and rate_table are the offer's, and
    # dcc_local_* the merchant's price it was quoted from.
    billing_minor: int = 0
    billing_currency: str = ""
    fx_rate: str = ""
    rate_table: str = ""
    billing_captured_minor: int = 0
    dcc_markup_bps: int = 0
    dcc_local_minor: int = 0
    dcc_local_currency: str = ""
    version: int = 1  # bumped by every successful compare-and-set

    def copy(self, **changes: Unpack[TransactionFields]) -> Transaction:
        return dataclasses.replace(self, **changes)


class TransactionFields(TypedDict, total=False):
    """Fields of a ``Transaction`` by name, any of them (``Transaction.copy``'s changes)."""

    id: str
    type: TxType
    state: TxState
    terminal_id: str
    merchant_id: str
    stan: int
    local_date: str
    local_time: str
    amount_minor: int
    currency: str
    card_token: str
    masked_pan: str
    bin: str
    scheme: str
    rrn: str
    created_at: float
    updated_at: float
    deadline_at: float
    acquirer_id: str
    captured_minor: int
    refunded_minor: int
    response_code: str
    auth_code: str
    original_id: str
    idempotency_key: str
    entry_mode: str
    mcc: str
    billing_minor: int
    billing_currency: str
    fx_rate: str
    rate_table: str
    billing_captured_minor: int
    dcc_markup_bps: int
    dcc_local_minor: int
    dcc_local_currency: str
    version: int


# Every column, in declaration order (backends map rows to Transaction by this order).
COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Transaction))


class ExpectColumns(TypedDict, total=False):
    """The columns an ``Expect`` sets, by name (``Expect.columns``)."""

    state: TxState
    type: TxType
    acquirer_id: str
    captured_minor: int
    refunded_minor: int
    response_code: str
    version: int


class ChangeColumns(TypedDict, total=False):
    """The columns a ``Changes`` sets, by name (``Changes.columns``)."""

    state: TxState
    acquirer_id: str
    captured_minor: int
    refunded_minor: int
    response_code: str
    auth_code: str
    updated_at: float
    deadline_at: float
    billing_minor: int
    billing_currency: str
    fx_rate: str
    rate_table: str
    billing_captured_minor: int


@dataclass(frozen=True, slots=True)
class Expect:
    """What a compare-and-set expects of the row: every field given must hold (None: any)."""

    state: TxState | None = None
    type: TxType | None = None
    acquirer_id: str | None = None
    captured_minor: int | None = None
    refunded_minor: int | None = None
    response_code: str | None = None
    version: int | None = None

    def columns(self) -> ExpectColumns:
        # The fields that are set, each with its own (non-None) type: ExpectColumns's items.
        return cast(ExpectColumns, set_columns(self, _EXPECT_FIELDS))


_EXPECT_FIELDS = field_names(Expect)


@dataclass(frozen=True, slots=True)
class Changes:
    """What a compare-and-set changes: the mutable columns, typed (None: left as it is). The
    fixed columns (id, type, terminal, STAN, card, amount...) cannot be named at all."""

    state: TxState | None = None
    acquirer_id: str | None = None
    captured_minor: int | None = None
    refunded_minor: int | None = None
    response_code: str | None = None
    auth_code: str | None = None
    updated_at: float | None = None
    deadline_at: float | None = None
    # the conversion the network reported (an authorization's answer, a capture's, a refund's)
    billing_minor: int | None = None
    billing_currency: str | None = None
    fx_rate: str | None = None
    rate_table: str | None = None
    billing_captured_minor: int | None = None

    def columns(self) -> ChangeColumns:
        # The fields that are set, each with its own (non-None) type: ChangeColumns's items.
        return cast(ChangeColumns, set_columns(self, _CHANGE_FIELDS))

    def to(self, state: TxState) -> Changes:
        """These changes with the state moved to ``state``."""
        return dataclasses.replace(self, state=state)

    def applied(self, tx: Transaction) -> Transaction:
        """``tx`` as it will be once these changes are written (the version is the store's)."""
        return tx.copy(**self.columns())


_CHANGE_FIELDS = field_names(Changes)

# Columns a compare-and-set may change: the fields of ``Changes``. id, type, terminal, STAN,
# date, amount and card fields are fixed.
MUTABLE_FIELDS = frozenset(f.name for f in dataclasses.fields(Changes))


@dataclass(frozen=True, slots=True)
class Recorded:
    """What ``record_with_answer`` wrote: the row as it is now, and whether the key was
    completed (False: no answer was given, or the outcome is recorded but the key was missing
    or its completion failed; the caller logs it, as it did when completion was its own write)."""

    tx: Transaction
    answered: bool


# Transitions allowed for one transaction type only, checked against the type the
# compare-and-set expects (so the store itself refuses them for any other row). A refund has no
# capture step: it is presented as soon as it is APPROVED, and the settlement run moves it
# APPROVED -> SETTLED when the acquirer's report settles it, so that a settled refund is not
# presented again and the operator sees it settled. An authorization still needs CAPTURED
# first. ARCHITECTURE.md's machine stays a subset: this only adds a transition for refunds.
#
# Stand-in sales (STOOD_IN, or ADVISED once the issuer acknowledged the advice) are captured
# and cleared like any sale: STOOD_IN | ADVISED -> CAPTURED (a local completion; the issuer
# posts it at clearing against the hold its advice placed, ``switch.operations.capture``).
# Voiding one before clearing reverses the advice: STOOD_IN | ADVISED -> VOIDED on the
# issuer's 00, -> REVERSAL_PENDING when the answer is unknown or the void's request died (the
# store-and-forward reversal then ends it REVERSED). Only authorizations stand in, so these
# expect the AUTHORIZATION type. ARCHITECTURE.md's machine stays a subset: they are additions.
TYPED_TRANSITIONS: Mapping[tuple[TxState, TxState], TxType] = {
    (S.APPROVED, S.SETTLED): TxType.REFUND,
    (S.STOOD_IN, S.CAPTURED): TxType.AUTHORIZATION,
    (S.ADVISED, S.CAPTURED): TxType.AUTHORIZATION,
    (S.STOOD_IN, S.VOIDED): TxType.AUTHORIZATION,
    (S.ADVISED, S.VOIDED): TxType.AUTHORIZATION,
    (S.STOOD_IN, S.REVERSAL_PENDING): TxType.AUTHORIZATION,
    (S.ADVISED, S.REVERSAL_PENDING): TxType.AUTHORIZATION,
}
STAND_IN_STATES = frozenset({S.STOOD_IN, S.ADVISED})


def check_transition(
    from_state: TxState, to_state: TxState, tx_type: TxType | str | None = None
) -> None:
    only = TYPED_TRANSITIONS.get((from_state, to_state))
    if only is not None:
        if tx_type is None or TxType(tx_type) is not only:
            raise IllegalTransition(
                f"{from_state} -> {to_state} is a transition of {only} transactions only"
                " (expect the type in the compare-and-set)"
            )
        return
    if to_state not in TRANSITIONS[from_state]:
        raise IllegalTransition(f"{from_state} -> {to_state} is not a transition")


_MONEY_FIELDS = frozenset(
    {
        "amount_minor",
        "captured_minor",
        "refunded_minor",
        "billing_minor",
        "billing_captured_minor",
    }
)


def check_cas(expected: Expect, changes: Changes) -> tuple[ExpectColumns, ChangeColumns]:
    """Validate a compare-and-set before any backend runs it (both backends share this), and
    give its columns: (expected, changes) as column -> value.

    Column names are known by construction (``Expect`` and ``Changes`` have no others; they end
    up in CQL/SQL text), only MUTABLE_FIELDS change, money stays an integer, and a change of
    ``state`` is only allowed as a legal transition from an expected state: otherwise a CAS on
    another column could move a DECLINED row to APPROVED behind the state machine's back.
    """
    if not isinstance(expected, Expect) or not isinstance(changes, Changes):
        raise TypeError("compare_and_set: expected an Expect and a Changes")
    want, change = expected.columns(), changes.columns()
    for name in _MONEY_FIELDS & (set(change) | set(want)):
        value = change.get(name, want.get(name))
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"compare_and_set: {name} must be an int (minor units)")
    if "state" in change:
        change["state"] = TxState(change["state"])
        if "state" not in want:
            raise IllegalTransition("a state change needs the expected state")
        check_transition(TxState(want["state"]), change["state"], want.get("type"))
    return want, change


def check_new(tx: Transaction) -> None:
    """Validate a transaction before insert: money in integer minor units, a known state."""
    for name in _MONEY_FIELDS:
        value = getattr(tx, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"insert_transaction: {name} must be an int (minor units)")
    TxState(tx.state)
    TxType(tx.type)


class DuplicateTransmission(StoreError):
    """A transaction with the same (terminal, local date, STAN) exists already."""

    def __init__(self, existing_id: str) -> None:
        super().__init__(f"duplicate transmission of transaction {existing_id}")
        self.existing_id = existing_id


class ReceivedOnly(StoreError):
    """``receive_with_intent`` inserted the transaction but a later step of it failed.

    Only the default (step by step) implementation raises it: ``tx`` is the row as inserted
    (RECEIVED), so that the caller settles it as it would have after a separate insert. A
    single-transaction backend writes all or nothing and raises the plain error instead.
    """

    def __init__(self, tx: Transaction, cause: BaseException) -> None:
        super().__init__(f"transaction {tx.id} received, then: {type(cause).__name__}: {cause}")
        self.tx = tx


class CasFailed(StoreError):
    """A compare-and-set found other values; ``current`` is the row as it is now."""

    def __init__(self, current: Transaction) -> None:
        super().__init__(f"compare-and-set failed on {current.id} (state {current.state})")
        self.current = current


class IllegalTransition(StoreError):
    """The state machine does not allow this transition (checked before touching the store)."""
