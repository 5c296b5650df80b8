"""The state store: one interface per concern, ``Store`` their union, fully abstract.

A backend implements every concern (a missing method fails at construction, not in
production) and passes the same contract tests in tests/store/: SQLite, embedded, the default
(``switch.store.sqlite``); Cassandra for many switch processes (``switch.store.cassandra``).
The records, states and invariants are the domain's (``switch.domain``); the store keeps them.

Every state change is a compare-and-set: SQLite does it as a serialised write, Cassandra as a
lightweight transaction. No card data beyond the token and masked PAN is ever stored here in
clear; the vault holds PANs only as HSM-encrypted blobs (``hsm.vault``), never CVV or PIN data.
"""

from __future__ import annotations

import abc

from switch.domain.devices import DeviceUse
from switch.domain.errors import StoreError
from switch.domain.idempotency import Answer
from switch.domain.risk import Observing
from switch.domain.transactions import (
    Changes,
    ReceivedOnly,
    Recorded,
    Transaction,
    TxState,
)
from switch.domain.vault import VaultWrite
from switch.store.batches import BatchStore
from switch.store.coordination import CoordinationStore
from switch.store.devices import DeviceStore
from switch.store.idempotency import IdempotencyStore
from switch.store.imports import ImportStore
from switch.store.ledger import DisputeStore, LedgerStore, ReconStore
from switch.store.offline import OfflineStore
from switch.store.revocations import RevocationStore
from switch.store.risk import RiskStore, observe_within
from switch.store.saf import SafStore
from switch.store.standin import StandInStore
from switch.store.transactions import TransactionStore
from switch.store.vault import VaultStore


class Store(
    TransactionStore,
    IdempotencyStore,
    VaultStore,
    DeviceStore,
    CoordinationStore,
    SafStore,
    StandInStore,
    RevocationStore,
    OfflineStore,
    RiskStore,
    BatchStore,
    LedgerStore,
    ReconStore,
    DisputeStore,
    ImportStore,
):
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
        device: DeviceUse | None = None,
        risk: Observing | None = None,
    ) -> Transaction:
        """Advance the request's ``device`` (``DeviceStore.advance_device``: a replayed
        counter or another terminal's device raises CounterReplay or DeviceElsewhere, nothing
        written), keep the card's vault entry, insert ``tx`` (RECEIVED), attach it to the
        idempotency key ``attach`` = (scope, key), then move it RECEIVED -> PENDING with
        ``acquirer_id`` and ``updated_at`` = ``now``: the intent, durable before anything
        leaves the switch. ``acquirer_id`` "" (no route) leaves the row RECEIVED. Returns the
        row as stored.

        A taken (terminal, local date, STAN) raises DuplicateTransmission with no row, no
        attachment and no transition; the vault entry stays written in every backend (it is
        written first, as when it was a write of its own: it is keyed by the card, not by the
        transaction, and an idempotent upsert, so an entry without a new transaction is
        harmless). When a step after the insert fails the default raises ReceivedOnly.
        ValueError when ``tx`` is not RECEIVED (or for what ``insert_transaction`` refuses).

        ``risk``: the request's risk observation (``Observing``), made with the intent once
        nothing refused it: ``risk.history`` or ``risk.failed`` is set, the intent stands
        either way; a refused intent (device, STAN) observes nothing. The default observes
        after the intent (``observe_within``); SQLite in the intent's own transaction (all or
        nothing with it); Cassandra beside the row's write once the guard passed (a row write
        that then fails may leave the observation made).
        """
        if tx.state is not TxState.RECEIVED:
            raise ValueError("receive_with_intent: the transaction must be new (RECEIVED)")
        if device is not None:
            await self.advance_device(device, now)
        if vault is not None:
            await self.put_vault_entry(vault.token_digest, vault.blob, vault.key_version, now)
        await self.insert_transaction(tx)
        try:
            if attach is not None:
                await self.attach_transaction(attach[0], attach[1], tx.id)
            if acquirer_id:
                tx = await self.transition(
                    tx.id,
                    TxState.RECEIVED,
                    TxState.PENDING,
                    Changes(acquirer_id=acquirer_id, updated_at=now),
                )
        except StoreError as exc:
            raise ReceivedOnly(tx, exc) from exc
        if risk is not None:
            await observe_within(self, risk, now)
        return tx

    async def record_with_answer(
        self,
        tx_id: str,
        from_state: TxState,
        to_state: TxState,
        changes: Changes,
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
