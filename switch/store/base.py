"""The state store interface: transactions with compare-and-set transitions, idempotency keys,
sequences, the PAN vault. One interface, two backends (SQLite embedded default, Cassandra)
passing the same contract tests in tests/store/.

Every state change is a compare-and-set: SQLite does it as a serialised write, Cassandra as a
lightweight transaction. No card data beyond the token and masked PAN is ever stored here in
clear; the vault holds PANs only as HSM-encrypted blobs (``hsm.vault``), never CVV or PIN data.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping

from switch.domain.errors import StoreError
from switch.domain.idempotency import Answer, Claim, IdempotencyRecord
from switch.domain.transactions import (
    ReceivedOnly,
    Recorded,
    Transaction,
    TxState,
    TxType,
    check_transition,
)
from switch.domain.vault import VaultEntry, VaultWrite

# Ledger, reconciliation and dispute storage: switch/store/ledger_base.py (needs StoreError).
from switch.store.ledger import LedgerStoreApi
from switch.store.revocations import Revocations
from switch.store.saf import SafStore


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
