"""Reversals of authorizations whose outcome is unknown, of voids that could not be confirmed,
and of transactions a crash left PENDING: all through the store-and-forward queue.

Work list. Every reversal is a ``REVERSAL`` item of the SAF queue (``switch/saf``), written to
the store before the terminal is answered where the answer depends on it: the pipeline records
the UNKNOWN outcome, then ``queue`` enqueues, then the answer (91) leaves. A crash between the
two is covered by the recovery sweep: ``scan`` (at start, then every ``scan_interval_s``, in one
switch process at a time: the holder of the ``recovery`` lease) enqueues every transaction left
PENDING past its deadline (moved to UNKNOWN first, by compare-and-set against its request's own
record: ``_abandon``), UNKNOWN or REVERSAL_PENDING. Enqueueing is idempotent, so the sweep
may find what the pipeline already queued; a dead letter stays dead until an operator replays it.

Voids. A void writes its REVERSAL item *before* it sends its own reversal, due only after the
void's deadline (``queue(..., not_before=...)``), and settles it (done, nothing sent) once it
has the issuer's answer: VOIDED, or a refusal that leaves the authorization APPROVED. So an
item that comes due on a transaction still APPROVED is a void whose request died in flight
(kill -9 while the issuer may already have released the hold): the handler reverses it. The
transaction's state is not moved before the send, so the live path needs no new transition.

The handler (``reverse_once``, one attempt; the queue does backoff, jitter and dead-lettering)
moves PENDING (past its deadline) -> UNKNOWN -> REVERSAL_PENDING, sends the reversal once, and
on the acquirer's acknowledgement moves REVERSAL_PENDING -> REVERSED.

A dead void (the item due on an APPROVED transaction, or on a STOOD_IN/ADVISED stand-in sale)
asks the issuer *before* any state moves: the reversal is sent with the transaction as it is.
Its 00 moves it -> REVERSAL_PENDING -> REVERSED; a refusal (e.g. 12: the sale was captured at
the issuer) is the answer the dead void would have had: the transaction stays as it is and the
item is done, never a REVERSAL_PENDING left to dead-letter; an unknown outcome leaves both for
the next attempt. Every void that ends REVERSED here joins its terminal's open batch as a VOID
(an authorization that was approved, response code 00; the join is idempotent, so a live void
that joined at REVERSAL_PENDING is not counted twice): batch totals count recovered voids.

The issuer releases the
hold idempotently (a reversal of an RRN it never saw is acknowledged and remembered, so a late
authorization cannot place a hold afterwards).

Crashed requests' idempotency keys. A key a crashed process left IN_FLIGHT would make every
retry wait (ABORTED) until the key's 24 h TTL. When the handler finds an authorization without
a known answer (it moved it out of PENDING itself, or found its key still IN_FLIGHT) it
completes the key with the answer the switch gives for every unknown outcome: 91 (issuer
unavailable) with the transaction id, RRN and amount, exactly what a terminal gets when the
acquirer does not answer in time. So a retry of a crashed request is told 91 and learns its
transaction was reversed (GetTransaction shows REVERSAL_PENDING, then REVERSED).

Inquiry. The simulated acquirers offer no status inquiry, so an unknown outcome is always
reversed, never confirmed; a reversal of something the issuer declined or never saw is
acknowledged and harmless.
"""

from __future__ import annotations

import asyncio
import time

from payswitch import codes
from payswitch.logs import get as get_logger
from payswitch.v1 import network_pb2, terminal_pb2
from switch.core.abandoned_keys import CRASH_MESSAGE, authorize_reply, decline_unsent
from switch.domain.batches import BatchItem, ItemKind
from switch.domain.errors import StoreError
from switch.domain.idempotency import IdemStatus
from switch.domain.saf import SafKind
from switch.domain.transactions import CasFailed, Changes, Transaction, TxState, TxType
from switch.recovery.refund_reservations import release_orphans, release_reversed
from switch.recovery.saf import NotDelivered, SafQueue, new_owner
from switch.routing.connectors import Connectors, OutcomeUnknown
from switch.store.base import Store
from switch.wire.convert import money, scheme_to_proto

_log = get_logger("switch.recovery.reversals")

RECOVERY_LEASE = "recovery"
# The lease outlives this many sweep intervals, so a live holder always renews it in time.
LEASE_SWEEPS = 3
SCAN_LIMIT = 500  # transactions per state per sweep; the next sweep takes the rest

# A node that answers these did not deliver the reversal (no time left, system error): resend.
_RETRY_CODES = frozenset({codes.ISSUER_UNAVAILABLE, codes.SYSTEM_MALFUNCTION})
# Memory-only reversals (store down): bounded like before.
_UNRECORDED_ATTEMPTS = 8
# States in which a due REVERSAL item is a void whose request died (see the docstring).
_DEAD_VOID = frozenset({TxState.APPROVED, TxState.STOOD_IN, TxState.ADVISED})


def crashed_answer(tx: Transaction) -> terminal_pb2.AuthorizeResponse:
    """The recorded answer for an authorization whose request ended without one (crash):
    91, as for any unknown outcome, carrying the transaction's identity."""
    return authorize_reply(tx, codes.ISSUER_UNAVAILABLE, CRASH_MESSAGE)


class Reverser:
    def __init__(
        self,
        store: Store,
        connectors: Connectors,
        saf: SafQueue | None = None,
        *,
        attempt_timeout_s: float | None = None,
        scan_interval_s: float | None = None,
    ) -> None:
        self._store = store
        self._connectors = connectors
        self.saf = saf if saf is not None else SafQueue(store)
        cfg = self.saf.config
        self._attempt_timeout = attempt_timeout_s or cfg.attempt_timeout_s
        self._scan_interval = scan_interval_s or cfg.scan_interval_s
        self._scanner: asyncio.Task[None] | None = None
        self._memory: dict[str, asyncio.Task[None]] = {}
        self._owner = self.saf.owner or new_owner()
        self.saf.register(SafKind.REVERSAL, self.reverse_once)

    # --- queueing -----------------------------------------------------------------
    async def queue(self, tx_id: str, not_before: float | None = None) -> bool:
        """Enqueue a reversal of a stored transaction, durably; False if the store refused
        (the recovery sweep then finds the transaction by its state). ``not_before``: a
        void's intent, written before the void sends (see the module's docstring)."""
        try:
            await self.saf.enqueue(SafKind.REVERSAL, tx_id, not_before)
            return True
        except StoreError as exc:
            _log.error("reversal_enqueue_failed", tx=tx_id, error=type(exc).__name__)
            return False

    async def settle(self, tx_id: str) -> None:
        """A void got its answer itself: its waiting item is done (best effort: an item left
        waiting finds the transaction VOIDED, or reverses an APPROVED one)."""
        try:
            await self.saf.settle(SafKind.REVERSAL, tx_id)
        except StoreError as exc:
            _log.error("reversal_settle_failed", tx=tx_id, error=type(exc).__name__)

    def schedule_unrecorded(self, tx: Transaction) -> None:
        """Reverse from memory an approval the store could not record (store down: nothing
        can be queued durably; the issuer's hold is released as soon as the acquirer answers)."""
        key = tx.id
        if key in self._memory:
            return
        task = asyncio.get_running_loop().create_task(self._send_from_memory(tx))
        self._memory[key] = task
        task.add_done_callback(lambda _t: self._memory.pop(key, None))

    async def _send_from_memory(self, tx: Transaction) -> None:
        for attempt in range(_UNRECORDED_ATTEMPTS):
            try:
                if await self._send(tx):
                    _log.info("reversed_unrecorded", tx=tx.id, rrn=tx.rrn)
                    return
            except NotDelivered:
                pass
            await asyncio.sleep(self.saf._backoff.delay(attempt + 1, self.saf._rng))
        _log.error("reversal_unrecorded_exhausted", tx=tx.id, rrn=tx.rrn)

    # --- recovery -----------------------------------------------------------------
    async def recover(self) -> int:
        """Enqueue every transaction that needs reversing; returns how many were found."""
        now = time.time()
        queued: set[str] = set()
        for state in (TxState.PENDING, TxState.UNKNOWN, TxState.REVERSAL_PENDING):
            for tx in await self._store.transactions_in_state(
                state, older_than=now, limit=SCAN_LIMIT
            ):
                if tx.id in queued:  # moved PENDING -> UNKNOWN by this sweep a moment ago
                    continue
                if state is TxState.PENDING and not await self._abandon(tx):
                    continue
                if await self.queue(tx.id):
                    queued.add(tx.id)
        # Refunds a dead request left RECEIVED: release their reservations (nothing was sent).
        await release_orphans(self._store, now)
        # Authorizations a dead request left RECEIVED (before their intent): decline them.
        await decline_unsent(self._store, now)
        return len(queued)

    async def _abandon(self, tx: Transaction) -> bool:
        """PENDING past its deadline -> UNKNOWN before its reversal is queued; False when its
        request recorded an outcome first (nothing to reverse).

        A PENDING transaction past its deadline may still have a live request (a slow or
        restarting process, another switch): if the sweep queued it as it was, and the request
        then recorded an approval and answered 00, the item would come due on an APPROVED
        transaction, which is what a dead void's item looks like, and the approval would be
        reversed behind the terminal's back (fault campaign seed 2004). The compare-and-set
        decides who was first: the sweep (the request's own record then fails and it answers
        96, reversing what it sent) or the request (the sweep leaves it alone)."""
        moved = await self._move(tx, TxState.PENDING, TxState.UNKNOWN)
        if moved.state is TxState.UNKNOWN:
            return True
        _log.info("recovery_pending_recorded", tx=tx.id, state=moved.state.value)
        return moved.state is TxState.REVERSAL_PENDING

    async def scan(self) -> int:
        """One sweep, if this process holds the recovery lease; returns what it enqueued."""
        lease_ttl = self._scan_interval * LEASE_SWEEPS
        if not await self._store.acquire_lease(RECOVERY_LEASE, self._owner, lease_ttl, time.time()):
            return 0
        return await self.recover()

    def start(self) -> None:
        self._scanner = asyncio.get_running_loop().create_task(self._scan_forever())
        self.saf.start()

    async def _scan_forever(self) -> None:
        while True:
            await asyncio.sleep(self._scan_interval)
            try:
                await self.scan()
            except StoreError:
                _log.warning("recovery_scan_failed")

    async def close(self) -> None:
        if self._scanner:
            self._scanner.cancel()
        await self.saf.close()
        for task in list(self._memory.values()):
            task.cancel()
        await asyncio.gather(*self._memory.values(), return_exceptions=True)

    async def wait_idle(self, timeout: float) -> bool:
        """Run the queue's due items now and wait for them (tests)."""
        await self.saf.run_once()
        return await self.saf.drain(timeout)

    # --- the handler ------------------------------------------------------------------
    async def reverse_once(self, tx: Transaction) -> bool:
        """One attempt at the REVERSAL item of ``tx``; True once nothing is left to reverse."""
        if tx.state is TxState.PENDING:
            if tx.deadline_at > time.time():
                raise NotDelivered("still in flight")
            tx = await self._move(tx, TxState.PENDING, TxState.UNKNOWN)
            if tx.state in _DEAD_VOID:
                # Its request recorded the outcome first (see ``_abandon``): this item was
                # queued for a PENDING transaction, it is no void's intent.
                _log.info("reversal_not_needed", tx=tx.id, state=tx.state.value)
                return True
        if tx.state is TxState.UNKNOWN:
            tx = await self._move(tx, TxState.UNKNOWN, TxState.REVERSAL_PENDING)
        if tx.state in _DEAD_VOID:
            # A void's intent its request never settled: it died with the reversal in flight.
            # Ask the issuer first, so that a refusal never becomes a REVERSAL_PENDING.
            _log.warning("void_recovered", tx=tx.id, state=tx.state.value)
            iso = await self._ask(tx)
            if iso != codes.APPROVED:
                _log.warning("void_refused_recovered", tx=tx.id, code=iso)
                return True  # the issuer refused the void: nothing was reversed
            tx = await self._move_dead_void(tx)
            if tx.state is TxState.REVERSAL_PENDING:
                return await self._reversed(tx)  # acknowledged already: nothing to resend
        await self._settle_key(tx)
        if tx.state is not TxState.REVERSAL_PENDING:
            # REVERSED already (another worker, or this item before a retry), or confirmed
            # otherwise: nothing owed but a reversed refund's reservation.
            _log.info("reversal_not_needed", tx=tx.id, state=tx.state.value)
            await self._release_refund(tx)
            return True
        if not await self._send(tx):
            return False
        return await self._reversed(tx)

    async def _reversed(self, tx: Transaction) -> bool:
        """The acquirer acknowledged the reversal: REVERSAL_PENDING -> REVERSED."""
        try:
            tx = await self._store.transition(
                tx.id, TxState.REVERSAL_PENDING, TxState.REVERSED, Changes(updated_at=time.time())
            )
        except CasFailed as exc:
            if exc.current.state is not TxState.REVERSED:
                raise
            tx = exc.current
        _log.info("reversed", tx=tx.id, rrn=tx.rrn)
        await self._join_void(tx)
        await self._release_refund(tx)
        return True

    async def _release_refund(self, tx: Transaction) -> None:
        """A REVERSED refund gives its reservation on the sale back (``release_reversed``);
        NotDelivered (the item retries) while that cannot be decided yet."""
        if tx.type is not TxType.REFUND or tx.state is not TxState.REVERSED:
            return
        if not await release_reversed(self._store, tx):
            raise NotDelivered("refund reversed: its sale's reservation is not released yet")

    async def _ask(self, tx: Transaction) -> str:
        """Send the reversal once; the issuer's code (00 or a refusal). NotDelivered when the
        outcome is unknown or a node could not deliver it (resend later)."""
        try:
            return codes.APPROVED if await self._send(tx) else codes.SYSTEM_MALFUNCTION
        except _Refused as exc:
            return exc.code

    async def _move_dead_void(self, tx: Transaction) -> Transaction:
        """The issuer released a dead void's hold: APPROVED | STOOD_IN | ADVISED ->
        REVERSAL_PENDING (a stand-in's is a typed transition)."""
        changes = Changes(updated_at=time.time())
        for _ in range(len(_DEAD_VOID) + 1):
            try:
                if tx.state is TxState.APPROVED:
                    return await self._store.transition(
                        tx.id, tx.state, TxState.REVERSAL_PENDING, changes
                    )
                return await self._store.typed_transition(
                    tx.id, tx.state, TxState.REVERSAL_PENDING, TxType.AUTHORIZATION, changes
                )
            except CasFailed as exc:
                tx = exc.current
                if tx.state not in _DEAD_VOID:
                    break
        return tx

    async def _join_void(self, tx: Transaction) -> None:
        """A reversed authorization that had been approved is a void: it joins its
        terminal's open batch as one (best effort, like every batch join)."""
        if tx.type is not TxType.AUTHORIZATION or tx.response_code != codes.APPROVED:
            return
        try:
            item = BatchItem(
                tx.id, ItemKind.VOID, tx.amount_minor, tx.currency, tx.scheme, time.time()
            )
            await self._store.join_batch(tx.terminal_id, item, time.time())
        except StoreError:
            _log.error("batch_join_failed", tx=tx.id, kind=ItemKind.VOID.value)

    async def _move(self, tx: Transaction, frm: TxState, to: TxState) -> Transaction:
        try:
            return await self._store.transition(tx.id, frm, to, Changes(updated_at=time.time()))
        except CasFailed as exc:  # a concurrent writer moved it first: go on from there
            return exc.current

    async def _settle_key(self, tx: Transaction) -> None:
        """Complete the authorization's idempotency key if a crash left it IN_FLIGHT."""
        if tx.type is not TxType.AUTHORIZATION or not tx.idempotency_key:
            return
        record = await self._store.get_idempotency(tx.terminal_id, tx.idempotency_key, time.time())
        if record is None or record.status is not IdemStatus.IN_FLIGHT:
            return
        if record.transaction_id not in ("", tx.id):
            return
        await self._store.complete_idempotency(
            tx.terminal_id, tx.idempotency_key, crashed_answer(tx).SerializeToString(), tx.id
        )
        _log.info("idempotency_key_recovered", tx=tx.id)

    async def _send(self, tx: Transaction) -> bool:
        """One reversal message; True when acknowledged. NotDelivered says why not."""
        msg = network_pb2.NetworkReversal(
            original_rrn=tx.rrn,
            bin=tx.bin,
            scheme=scheme_to_proto(tx.scheme),
            acquirer_id=tx.acquirer_id,
            amount=money(tx.amount_minor, tx.currency),
            reason=network_pb2.REVERSAL_REASON_TIMEOUT,
        )
        try:
            result = await self._connectors.get(tx.acquirer_id).reverse(msg, self._attempt_timeout)
        except OutcomeUnknown as exc:
            raise NotDelivered(str(exc)) from None
        iso = codes.to_iso(result.response_code)
        if iso == codes.APPROVED:
            return True
        if iso not in _RETRY_CODES:
            _log.error("reversal_refused", tx=tx.id, code=iso)
            raise _Refused(iso)
        raise NotDelivered(f"acquirer answered {iso}")


class _Refused(NotDelivered):
    """The issuer answered the reversal with a refusal (not a code that means "resend")."""

    def __init__(self, code: str) -> None:
        super().__init__(f"acquirer answered {code}")
        self.code = code
