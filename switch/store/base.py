"""The state store interface: transactions with compare-and-set transitions, idempotency keys,
sequences, the PAN vault. One interface, two backends (SQLite embedded default, Cassandra)
passing the same contract tests in tests/store/.

Every state change is a compare-and-set: SQLite does it as a serialised write, Cassandra as a
lightweight transaction. No card data beyond the token and masked PAN is ever stored here in
clear; the vault holds PANs only as HSM-encrypted blobs (``hsm.vault``), never CVV or PIN data.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass

from switch.store.revocations import Revocation, Revocations  # noqa: F401 (re-export)
from switch.store.saf_base import SafStore


class TxState(enum.StrEnum):
    """The lifecycle of DESIGN.md; names match payswitch.v1.TransactionState."""

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
    version: int = 1  # bumped by every successful compare-and-set

    def copy(self, **changes: object) -> Transaction:
        return dataclasses.replace(self, **changes)


# Every column, in declaration order (backends map rows to Transaction by this order).
COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Transaction))

# Columns a compare-and-set may change. id, type, terminal, stan, date, card fields are fixed.
MUTABLE_FIELDS = frozenset(
    {
        "state",
        "acquirer_id",
        "captured_minor",
        "refunded_minor",
        "response_code",
        "auth_code",
        "updated_at",
        "deadline_at",
    }
)


class IdemStatus(enum.StrEnum):
    IN_FLIGHT = "IN_FLIGHT"
    COMPLETED = "COMPLETED"


@dataclass(slots=True)
class IdempotencyRecord:
    """A claimed idempotency key, scoped to a terminal.

    ``fingerprint`` is a keyed digest of the request content without the key itself;
    ``response`` is the serialised protobuf answer once COMPLETED, replayed on retries.
    """

    scope: str  # the terminal id
    key: str
    operation: str  # "authorize", "capture", "void", "refund"
    fingerprint: str
    status: IdemStatus
    created_at: float
    expires_at: float
    transaction_id: str = ""
    response: bytes = b""


@dataclass(slots=True)
class Claim:
    """Result of claim_idempotency: ``claimed`` is True when this caller now owns the key;
    otherwise ``record`` is the existing claim (in flight or completed)."""

    claimed: bool
    record: IdempotencyRecord


@dataclass(slots=True)
class VaultEntry:
    """One card's PAN as the vault keeps it: encrypted in the HSM, never in clear.

    ``token_digest`` is the card's token (``hsm.tokens.Token.digest``, the full HMAC-SHA256 of
    the PAN in hex: unique per card, the ``card_token`` of its transactions). ``blob`` is an
    ``hsm.vault`` AES-GCM blob whose additional data is the token digest, so a blob cannot be
    moved to another card's row; ``key_version`` is the vault key version it was sealed under
    (also inside the blob's header), kept as a column so a re-encryption job can find old ones.
    """

    token_digest: str
    blob: bytes
    key_version: int
    created_at: float
    updated_at: float

    def __repr__(self) -> str:  # the blob is ciphertext, but keep reprs short and boring
        return f"VaultEntry({self.token_digest[:12]}..., v{self.key_version})"


@dataclass(frozen=True, slots=True)
class VaultWrite:
    """A card's sealed PAN to keep (the arguments of ``put_vault_entry`` without the clock)."""

    token_digest: str
    blob: bytes
    key_version: int

    def __repr__(self) -> str:
        return f"VaultWrite({self.token_digest[:12]}..., v{self.key_version})"


@dataclass(frozen=True, slots=True)
class Answer:
    """An idempotency key to complete with the serialised answer to replay."""

    scope: str
    key: str
    response: bytes


@dataclass(frozen=True, slots=True)
class Recorded:
    """What ``record_with_answer`` wrote: the row as it is now, and whether the key was
    completed (False: no answer was given, or the outcome is recorded but the key was missing
    or its completion failed; the caller logs it, as it did when completion was its own write)."""

    tx: Transaction
    answered: bool


class StoreError(Exception):
    """Base of store errors."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached or did not answer: callers fail closed."""


class DuplicateTransmission(StoreError):
    """A transaction with the same (terminal, local date, STAN) exists already."""

    def __init__(self, existing_id: str) -> None:
        super().__init__(f"duplicate transmission of transaction {existing_id}")
        self.existing_id = existing_id


class NotFound(StoreError):
    pass


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


# Transitions allowed for one transaction type only, checked against the type the
# compare-and-set expects (so the store itself refuses them for any other row). A refund has no
# capture step: it is presented as soon as it is APPROVED, and the settlement run moves it
# APPROVED -> SETTLED when the acquirer's report settles it, so that a settled refund is not
# presented again and the operator sees it settled. An authorization still needs CAPTURED
# first. DESIGN.md's machine stays a subset: this only adds a transition for refunds.
#
# Stand-in sales (STOOD_IN, or ADVISED once the issuer acknowledged the advice) are captured
# and cleared like any sale: STOOD_IN | ADVISED -> CAPTURED (a local completion; the issuer
# posts it at clearing against the hold its advice placed, ``switch.operations.capture``).
# Voiding one before clearing reverses the advice: STOOD_IN | ADVISED -> VOIDED on the
# issuer's 00, -> REVERSAL_PENDING when the answer is unknown or the void's request died (the
# store-and-forward reversal then ends it REVERSED). Only authorizations stand in, so these
# expect the AUTHORIZATION type. DESIGN.md's machine stays a subset: they are additions.
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


_MONEY_FIELDS = frozenset({"amount_minor", "captured_minor", "refunded_minor"})


def check_cas(expected: Mapping[str, object], changes: Mapping[str, object]) -> None:
    """Validate a compare-and-set before any backend runs it (both backends share this).

    Column names must be known (they end up in CQL/SQL text), only MUTABLE_FIELDS change,
    money stays an integer, and a change of ``state`` is only allowed as a legal transition
    from an expected state: otherwise a CAS on another column could move a DECLINED row to
    APPROVED behind the state machine's back.
    """
    unknown = set(expected) - set(COLUMNS)
    if unknown:
        raise ValueError(f"compare_and_set: unknown expected columns {sorted(unknown)}")
    fixed = set(changes) - MUTABLE_FIELDS
    if fixed:
        raise ValueError(f"compare_and_set: columns {sorted(fixed)} cannot change")
    for name in _MONEY_FIELDS & set(changes):
        value = changes[name]
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"compare_and_set: {name} must be an int (minor units)")
    if "state" in changes:
        if "state" not in expected:
            raise IllegalTransition("a state change needs the expected state")
        check_transition(
            TxState(expected["state"]), TxState(changes["state"]), expected.get("type")
        )


def check_new(tx: Transaction) -> None:
    """Validate a transaction before insert: money in integer minor units, a known state."""
    for name in _MONEY_FIELDS:
        value = getattr(tx, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"insert_transaction: {name} must be an int (minor units)")
    TxState(tx.state)
    TxType(tx.type)


def check_vault_entry(token_digest: str, key_version: int) -> None:
    """Validate a vault write before any backend runs it (both backends share this)."""
    if not token_digest:
        raise ValueError("put_vault_entry: token_digest is required")
    if not isinstance(key_version, int) or isinstance(key_version, bool) or key_version < 1:
        raise ValueError("put_vault_entry: key_version must be a positive int")


# Ledger, reconciliation and dispute storage: switch/store/ledger_base.py (needs StoreError).
from switch.store.ledger_base import LedgerStoreApi  # noqa: E402


class Store(Revocations, LedgerStoreApi, SafStore, abc.ABC):
    """Async state store. Blocking backends run their calls off the event loop thread.

    Every backend error other than the ones named below surfaces as StoreUnavailable, so that
    callers fail closed. ``async with store:`` opens and closes it.
    """

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply the schema idempotently."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # --- idempotency keys -----------------------------------------------------------
    @abc.abstractmethod
    async def claim_idempotency(
        self, scope: str, key: str, operation: str, fingerprint: str, ttl_s: float, now: float
    ) -> Claim:
        """Atomically claim (scope, key) as IN_FLIGHT, or return the existing live record.

        A record with ``expires_at <= now`` counts as absent (Cassandra expires it by TTL)
        and is replaced by the new claim; ``expires_at`` = ``now + ttl_s``.
        """

    @abc.abstractmethod
    async def attach_transaction(self, scope: str, key: str, transaction_id: str) -> None:
        """Record which transaction an in-flight key created (for lookups and recovery).
        Raises NotFound when there is no record for the key."""

    @abc.abstractmethod
    async def complete_idempotency(
        self, scope: str, key: str, response: bytes, transaction_id: str
    ) -> None:
        """Mark the key COMPLETED with the serialised answer to replay. Raises NotFound when
        there is no record for the key (released, or never claimed)."""

    @abc.abstractmethod
    async def get_idempotency(self, scope: str, key: str, now: float) -> IdempotencyRecord | None:
        """The live record for (scope, key), or None."""

    @abc.abstractmethod
    async def release_idempotency(self, scope: str, key: str) -> None:
        """Drop an IN_FLIGHT claim whose request ended without any effect (e.g. the store
        refused the intent), so that a retry can claim it again. A COMPLETED record is never
        dropped (its answer must keep replaying); a missing key is not an error."""

    # --- transactions -----------------------------------------------------------------
    @abc.abstractmethod
    async def insert_transaction(self, tx: Transaction) -> None:
        """Insert a new transaction; raises DuplicateTransmission when (terminal_id,
        local_date, stan) is taken, ValueError for non-integer money."""

    @abc.abstractmethod
    async def get_transaction(self, tx_id: str) -> Transaction | None: ...

    @abc.abstractmethod
    async def compare_and_set(
        self, tx_id: str, expected: Mapping[str, object], changes: Mapping[str, object]
    ) -> Transaction:
        """Apply ``changes`` iff every column in ``expected`` has the given value; bumps
        ``version``. Raises CasFailed with the current row, or NotFound. Arguments are
        validated by ``check_cas`` first (ValueError, IllegalTransition)."""

    async def transition(
        self,
        tx_id: str,
        from_state: TxState,
        to_state: TxState,
        changes: Mapping[str, object] | None = None,
    ) -> Transaction:
        """State-machine transition as a compare-and-set on ``state``."""
        check_transition(from_state, to_state)
        updates = dict(changes or {})
        updates["state"] = to_state
        return await self.compare_and_set(tx_id, {"state": from_state}, updates)

    async def typed_transition(
        self,
        tx_id: str,
        from_state: TxState,
        to_state: TxState,
        tx_type: TxType,
        changes: Mapping[str, object] | None = None,
    ) -> Transaction:
        """A transition of ``TYPED_TRANSITIONS``: the compare-and-set expects the type too."""
        updates = dict(changes or {})
        updates["state"] = to_state
        return await self.compare_and_set(tx_id, {"state": from_state, "type": tx_type}, updates)

    # --- composite writes of one authorization -----------------------------------------
    # The authorization pipeline writes three times: claim the key (before the card is
    # decrypted), "receive + intent" (before forwarding) and "record + answer" (after). The
    # defaults below call the primitives in order, one durable write each (Cassandra: one LWT
    # per partition, nothing to batch across partitions); SQLite overrides them with one
    # transaction each, so one authorization costs three commits (fsyncs) instead of seven.
    async def receive_with_intent(
        self,
        tx: Transaction,
        *,
        vault: VaultWrite | None,
        attach: tuple[str, str] | None,
        acquirer_id: str,
        now: float,
    ) -> Transaction:
        """Keep the card's vault entry, insert ``tx`` (RECEIVED), attach it to the idempotency
        key ``attach`` = (scope, key), then move it RECEIVED -> PENDING with ``acquirer_id``
        and ``updated_at`` = ``now``: the intent, durable before anything leaves the switch.
        ``acquirer_id`` "" (no route) leaves the row RECEIVED. Returns the row as stored.

        A taken (terminal, local date, STAN) raises DuplicateTransmission with no row, no
        attachment and no transition; the vault entry stays written in every backend (it is
        written first, as when it was a write of its own: it is keyed by the card, not by the
        transaction, and an idempotent upsert, so an entry without a new transaction is
        harmless). When a step after the insert fails the default raises ReceivedOnly.
        ValueError when ``tx`` is not RECEIVED (or for what ``insert_transaction`` refuses).
        """
        if tx.state is not TxState.RECEIVED:
            raise ValueError("receive_with_intent: the transaction must be new (RECEIVED)")
        if vault is not None:
            await self.put_vault_entry(vault.token_digest, vault.blob, vault.key_version, now)
        await self.insert_transaction(tx)
        try:
            if attach is not None:
                await self.attach_transaction(attach[0], attach[1], tx.id)
            if not acquirer_id:
                return tx
            return await self.transition(
                tx.id,
                TxState.RECEIVED,
                TxState.PENDING,
                {"acquirer_id": acquirer_id, "updated_at": now},
            )
        except StoreError as exc:
            raise ReceivedOnly(tx, exc) from exc

    async def record_with_answer(
        self,
        tx_id: str,
        from_state: TxState,
        to_state: TxState,
        changes: Mapping[str, object],
        answer: Answer | None,
    ) -> Recorded:
        """The final transition (a compare-and-set, as ``transition``), then complete the
        idempotency key ``answer`` with the serialised answer and ``transaction_id`` = ``tx_id``.

        Raises (CasFailed, NotFound, StoreUnavailable...) only when the transition is not
        recorded, and then the key is left as it was (not completed). A key that cannot be
        completed after a recorded transition gives ``answered=False``, never an error: the
        outcome must stand (an approval is in the store) whatever happens to the key.
        """
        tx = await self.transition(tx_id, from_state, to_state, changes)
        if answer is None:
            return Recorded(tx, answered=False)
        try:
            await self.complete_idempotency(answer.scope, answer.key, answer.response, tx_id)
        except StoreError:
            return Recorded(tx, answered=False)
        return Recorded(tx, answered=True)

    @abc.abstractmethod
    async def transactions_in_state(
        self, state: TxState, older_than: float, limit: int = 100
    ) -> list[Transaction]:
        """Transactions in ``state`` whose deadline_at is before ``older_than`` (recovery),
        oldest deadline first, at most ``limit``."""

    @abc.abstractmethod
    async def refunds_of(self, original_id: str) -> list[Transaction]:
        """The refund transactions linked to ``original_id``, oldest first."""

    # --- PAN vault ----------------------------------------------------------------------
    # Not abstract, so that a backend under construction still loads; until it implements
    # these, every authorization through it fails closed (96) at the vault stage.
    async def put_vault_entry(
        self, token_digest: str, blob: bytes, key_version: int, now: float
    ) -> bool:
        """Keep a card's encrypted PAN so that settlement can recover it by the card's token.

        Inserts when the card has no entry. Replaces an entry only with a strictly newer
        ``key_version`` (lazy re-encryption after a vault key rotation: ``created_at`` stays,
        ``updated_at`` = ``now``); the same or an older version changes nothing, so concurrent
        writers of one card can never move it back to an older key. True when written.
        Arguments are validated by ``check_vault_entry`` first (ValueError).
        """
        raise NotImplementedError(f"{type(self).__name__} has no PAN vault")

    async def get_vault_entry(self, token_digest: str) -> VaultEntry | None:
        """The card's vault entry, or None."""
        raise NotImplementedError(f"{type(self).__name__} has no PAN vault")

    # --- leases ----------------------------------------------------------------------
    @abc.abstractmethod
    async def acquire_lease(self, name: str, owner: str, ttl_s: float, now: float) -> bool:
        """Take, or renew, the lease ``name`` for ``owner`` until ``now + ttl_s``; True while
        ``owner`` holds it. A lease another owner holds is free again once it expires.

        Work that must run in one switch process at a time among many on one store (the
        recovery scan today; store-and-forward workers and batch cut-off later) runs only
        while its lease is held, renewed well inside its TTL."""

    # --- sequences --------------------------------------------------------------------
    @abc.abstractmethod
    async def next_sequence(self, name: str) -> int:
        """A strictly increasing counter shared by every switch process on this store
        (RRN and network STAN numbering), durable across restarts; the first value is 1."""
