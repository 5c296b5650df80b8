"""Stand-in advices: every STOOD_IN approval is sent to its issuer (``Advise``: acquirer ->
scheme -> issuer) until the issuer acknowledges, then moved STOOD_IN -> ADVISED.

The advice carries the card as the authorization did: the PAN, opened from the switch's vault
in the HSM (the request's memory is long gone), never logged or stored in clear. It goes to
the acquirer the transaction names, else (refused before sending) to the merchant's other
acquirers serving the scheme, through their circuit breakers; the acquirer that carried it is
recorded with the ADVISED transition, so later follow-ups use it. The issuer posts an advice
idempotently on the RRN, so a resend after an unknown outcome is harmless.

Work list: the store-and-forward queue (``switch/saf``). The pipeline enqueues an ``ADVICE``
item (``queue_advice``) once the stand-in approval is recorded and before the terminal hears
00, as reversal items are; ``Adviser.send`` is the queue's ``SafKind.ADVICE`` handler (one
attempt; the queue does backoff with jitter, dead-lettering after ``max_attempts`` and the
operator's replay through the admin API). A crash between the record and the enqueue is
covered by a safety-net sweep (``scan``, every ``[standin] advice_interval_s``, in the one
switch process holding the ``recovery`` lease): it *enqueues* the STOOD_IN transactions that
have no item waiting (a delivered item of a transaction still STOOD_IN is armed again); it
never sends by itself, so every advice has one sender, the queue.

Captured before advised. The merchant may capture a stand-in sale before its advice is
delivered (STOOD_IN -> CAPTURED, ``switch.operations.capture``): the advice is still owed and
is sent all the same; the issuer's 00 then leaves the transaction CAPTURED (the item, done,
is the record that the issuer holds it). The settlement run clears a batch only once every
stand-in sale in it has been advised (``switch.backoffice.settlement.standin``), so the issuer
always has the advice's hold before the presentment posts against it. A stand-in voided first
(VOIDED, REVERSAL_PENDING, REVERSED) owes no advice: the item ends without sending.

Refused. An issuer's refusal (any answer but 00, 91 and 96) is final: the item is dead at once
and a case records the evidence and who bears the loss (``switch.recovery.advice_cases``).
91 and 96 say the issuer could not decide: retried like an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import NoReturn

from payswitch import codes
from payswitch.cards import Scheme
from payswitch.logs import get as get_logger
from payswitch.v1 import network_pb2
from payswitch.world.topology import Topology, TopologyError
from switch.cardsec.protector import CardProtector
from switch.core.sequences import network_stan_of
from switch.domain.errors import StoreError
from switch.domain.saf import SafKind, item_id
from switch.domain.transactions import CasFailed, Changes, Expect, Transaction, TxState
from switch.recovery import advice_cases as cases
from switch.recovery.reversals import LEASE_SWEEPS, RECOVERY_LEASE
from switch.recovery.saf import NotDelivered, Refused, SafQueue, new_owner
from switch.routing.connectors import Connectors, OutcomeUnknown
from switch.routing.connectors import Refused as NotSent
from switch.routing.router import Router
from switch.store.base import Store
from switch.wire.convert import money, scheme_to_proto

_log = get_logger("switch.recovery.advice")

SCAN_LIMIT = 500  # STOOD_IN transactions looked at per sweep; the next sweep takes the rest

# An ADVICE item is sent while its stand-in is STOOD_IN, or CAPTURED before it was advised.
_ADVISABLE = frozenset({TxState.STOOD_IN, TxState.CAPTURED})
# A stand-in voided before its advice went: nothing to advise.
_VOIDED = (TxState.VOIDED, TxState.REVERSAL_PENDING, TxState.REVERSED)


async def queue_advice(saf: SafQueue | None, tx_id: str) -> bool:
    """Enqueue the advice of a recorded stand-in approval, durably; False when there is no
    queue or the store refused (the safety-net sweep then finds the STOOD_IN transaction)."""
    if saf is None:
        return False
    try:
        await saf.enqueue(SafKind.ADVICE, tx_id)
        return True
    except StoreError as exc:
        _log.error("advice_enqueue_failed", tx=tx_id, error=type(exc).__name__)
        return False


class Adviser:
    def __init__(
        self,
        topology: Topology,
        store: Store,
        connectors: Connectors,
        router: Router,
        protector: CardProtector,
        saf: SafQueue | None = None,
        *,
        owner: str | None = None,
        attempt_timeout_s: float | None = None,
    ) -> None:
        self._topology = topology
        self._store = store
        self._connectors = connectors
        self._router = router
        self._protector = protector
        self.saf = saf if saf is not None else SafQueue(store)
        self._interval = topology.standin.advice_interval_s
        self._timeout = attempt_timeout_s or self.saf.config.attempt_timeout_s
        self._owner = owner or self.saf.owner or new_owner()
        self._scanner: asyncio.Task[None] | None = None
        self.saf.register(SafKind.ADVICE, self.send)

    def _route(self, tx: Transaction) -> list[str]:
        """The transaction's acquirer first, then the merchant's others for the scheme."""
        others: list[str] = []
        with contextlib.suppress(TopologyError, ValueError):
            merchant = self._topology.merchant(tx.merchant_id)
            others = self._router.candidates(merchant, Scheme(tx.scheme))
        first = [tx.acquirer_id] if tx.acquirer_id else []
        return first + [a for a in others if a not in first]

    async def _message(self, tx: Transaction) -> network_pb2.NetworkAdvice:
        entry = await self._store.get_vault_entry(tx.card_token)
        if entry is None:
            _log.error("advice_no_vault_entry", tx=tx.id)
            raise NotDelivered("the card is not in the vault")
        pan = await self._protector.reveal_pan(tx.card_token, entry.blob)
        return network_pb2.NetworkAdvice(
            rrn=tx.rrn,
            stan=network_stan_of(int(tx.rrn)),
            merchant_id=tx.merchant_id,
            terminal_id=tx.terminal_id,
            merchant_category_code=tx.mcc,
            amount=money(tx.amount_minor, tx.currency),
            scheme=scheme_to_proto(tx.scheme),
            pan=pan,
            auth_code=tx.auth_code,
            reason=network_pb2.ADVICE_REASON_STAND_IN,
            transmission_time_ms=int(time.time() * 1000),
        )

    async def send(self, tx: Transaction) -> bool:
        """The ADVICE handler: advise one stood-in approval once. True once the issuer
        acknowledged and the transaction is ADVISED (or already was); NotDelivered says why
        not (kept as the item's ``last_error``)."""
        if tx.state is TxState.ADVISED:
            return True
        if tx.state not in _ADVISABLE:
            if tx.state not in _VOIDED:
                _log.error("advice_wrong_state", tx=tx.id, state=str(tx.state))
            return True  # nothing to advise (a voided stand-in): do not keep it queued
        msg = await self._message(tx)
        for acquirer_id in self._route(tx):
            msg.acquirer_id = acquirer_id
            try:
                result = await self._connectors.get(acquirer_id).advise(msg, self._timeout)
            except NotSent:
                continue  # certainly not sent: the next acquirer may take it
            except OutcomeUnknown as exc:
                # It may have arrived: no other route this attempt (the issuer dedups on the
                # RRN, but one advice in flight at a time keeps the story simple).
                _log.info("advice_unanswered", tx=tx.id, acquirer=acquirer_id, error=str(exc))
                raise NotDelivered(f"{acquirer_id}: no answer") from None
            iso = codes.to_iso(result.response_code)
            if iso in cases.TRANSIENT:
                _log.info("advice_not_decided", tx=tx.id, acquirer=acquirer_id, code=iso)
                raise NotDelivered(f"{acquirer_id} answered {iso}")
            if iso != codes.APPROVED:
                await self._refused(tx, iso, result.responder, acquirer_id)
            return await self._advised(tx, acquirer_id)
        raise NotDelivered("no acquirer could take it")

    async def _refused(
        self, tx: Transaction, iso: str, responder: str, acquirer_id: str
    ) -> NoReturn:
        """The issuer refused the advice: a case with its liability (``advice_cases``), and
        the item dead at once (never retried by itself). A store failure recording the case
        is an ordinary failed attempt: the advice is sent again and refused again."""
        case = cases.refused_advice(tx, iso, responder, acquirer_id)
        await self._store.recon_upsert(case, time.time())
        who = cases.liable(iso)
        _log.error(
            "advice_refused",
            tx=tx.id,
            acquirer=acquirer_id,
            code=iso,
            case=case.issue_id,
            liable=who,
        )
        raise Refused(
            f"{acquirer_id}: {responder or 'the issuer'} refused {iso}; case {case.issue_id}, "
            f"liable: {who}"
        )

    async def _advised(self, tx: Transaction, acquirer_id: str) -> bool:
        moved = acquirer_id != tx.acquirer_id
        changes = Changes(updated_at=time.time(), acquirer_id=acquirer_id if moved else None)
        if tx.state is TxState.CAPTURED:
            # Captured before the advice landed: the state stays (the item's done flag says
            # the issuer holds it); only the carrying acquirer is recorded if it changed.
            if moved:
                await self._store.compare_and_set(
                    tx.id, Expect(state=TxState.CAPTURED, acquirer_id=tx.acquirer_id), changes
                )
            _log.info("advised_captured", tx=tx.id, rrn=tx.rrn, acquirer=acquirer_id)
            return True
        try:
            await self._store.transition(tx.id, TxState.STOOD_IN, TxState.ADVISED, changes)
        except CasFailed as exc:
            if exc.current.state is TxState.CAPTURED and moved:
                return await self._advised(exc.current, acquirer_id)
            if exc.current.state not in (TxState.ADVISED, TxState.CAPTURED, *_VOIDED):
                raise
            return True  # advised by another process, or captured/voided meanwhile
        _log.info("advised", tx=tx.id, rrn=tx.rrn, acquirer=acquirer_id)
        return True

    # --- the safety net: STOOD_IN transactions without a waiting item ------------------
    async def scan(self) -> int:
        """Enqueue the advice of every STOOD_IN transaction (past its request's deadline)
        that has no live or dead item, if this process holds the recovery lease; returns how
        many it enqueued."""
        ttl = self._interval * LEASE_SWEEPS
        if not await self._store.acquire_lease(RECOVERY_LEASE, self._owner, ttl, time.time()):
            return 0
        enqueued = 0
        for tx in await self._store.transactions_in_state(
            TxState.STOOD_IN, older_than=time.time(), limit=SCAN_LIMIT
        ):
            item = await self._store.saf_get(item_id(SafKind.ADVICE, tx.id))
            if item is not None and not item.done:
                continue  # waiting, or a dead letter for an operator
            await self.saf.enqueue(SafKind.ADVICE, tx.id)
            _log.warning("advice_enqueued_by_sweep", tx=tx.id)
            enqueued += 1
        return enqueued

    def start(self) -> None:
        self._scanner = asyncio.get_running_loop().create_task(self._scan_forever())
        self.saf.start()

    async def _scan_forever(self) -> None:
        while True:
            try:
                await self.scan()
            except StoreError:
                _log.warning("advice_scan_failed")
            await asyncio.sleep(self._interval)

    async def close(self) -> None:
        if self._scanner is not None:
            self._scanner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scanner
