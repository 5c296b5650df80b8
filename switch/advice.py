"""Stand-in advices: every STOOD_IN approval is sent to its issuer (``Advise``: acquirer ->
scheme -> issuer) until the issuer acknowledges, then moved STOOD_IN -> ADVISED.

The advice carries the card as the authorization did: the PAN, opened from the switch's vault
in the HSM (the request's memory is long gone), never logged or stored in clear. It goes to
the acquirer the transaction names, else (refused before sending) to the merchant's other
acquirers serving the scheme, through their circuit breakers; the acquirer that carried it is
recorded with the ADVISED transition, so later follow-ups use it. The issuer posts an advice
idempotently on the RRN, so a resend after an unknown outcome is harmless.

Durability: the store is the queue. ``send`` is the ``SafKind.ADVICE`` handler shape of the
store-and-forward queue (``Callable[[Transaction], Awaitable[bool]]``, True once acknowledged,
the handler doing the final transition). Until that queue exists on the branch, ``scan``
treats STOOD_IN transactions as the work list every ``advice_interval_s``, in the one switch
process holding the ``recovery`` lease (as ``switch.reversals`` does), so an approval given by
a process that died is still advised by another.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid

from network.topology import Topology, TopologyError
from payswitch import codes
from payswitch.cards import Scheme
from payswitch.logs import get as get_logger
from payswitch.v1 import network_pb2
from switch.cardsec import CardProtector
from switch.connectors import Connectors, OutcomeUnknown, Refused
from switch.convert import money, scheme_to_proto
from switch.reversals import LEASE_SWEEPS, RECOVERY_LEASE
from switch.routing import Router
from switch.sequences import network_stan_of
from switch.store.base import CasFailed, Store, StoreError, Transaction, TxState

_log = get_logger("switch.advice")

SCAN_LIMIT = 100


class Adviser:
    def __init__(
        self,
        topology: Topology,
        store: Store,
        connectors: Connectors,
        router: Router,
        protector: CardProtector,
        *,
        owner: str | None = None,
        attempt_timeout_s: float = 2.0,
    ) -> None:
        self._topology = topology
        self._store = store
        self._connectors = connectors
        self._router = router
        self._protector = protector
        self._interval = topology.standin.advice_interval_s
        self._timeout = attempt_timeout_s
        self._owner = owner or f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self._scanner: asyncio.Task | None = None
        self._lock = asyncio.Lock()  # one sweep at a time in this process

    def _route(self, tx: Transaction) -> list[str]:
        """The transaction's acquirer first, then the merchant's others for the scheme."""
        others: list[str] = []
        with contextlib.suppress(TopologyError, ValueError):
            merchant = self._topology.merchant(tx.merchant_id)
            others = self._router.candidates(merchant, Scheme(tx.scheme))
        first = [tx.acquirer_id] if tx.acquirer_id else []
        return first + [a for a in others if a not in first]

    async def _message(self, tx: Transaction) -> network_pb2.NetworkAdvice | None:
        entry = await self._store.get_vault_entry(tx.card_token)
        if entry is None:
            _log.error("advice_no_vault_entry", tx=tx.id)
            return None
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
        """Advise one stood-in approval; True once the issuer acknowledged and the
        transaction is ADVISED (or already was)."""
        if tx.state is TxState.ADVISED:
            return True
        if tx.state is not TxState.STOOD_IN:
            _log.error("advice_wrong_state", tx=tx.id, state=str(tx.state))
            return True  # nothing to advise: do not keep it queued
        msg = await self._message(tx)
        if msg is None:
            return False
        for acquirer_id in self._route(tx):
            msg.acquirer_id = acquirer_id
            try:
                result = await self._connectors.get(acquirer_id).advise(msg, self._timeout)
            except Refused:
                continue
            except OutcomeUnknown as exc:
                _log.info("advice_unanswered", tx=tx.id, acquirer=acquirer_id, error=str(exc))
                return False
            iso = codes.to_iso(result.response_code)
            if iso != codes.APPROVED:
                _log.warning("advice_refused", tx=tx.id, acquirer=acquirer_id, code=iso)
                return False
            return await self._advised(tx, acquirer_id)
        return False

    async def _advised(self, tx: Transaction, acquirer_id: str) -> bool:
        changes: dict[str, object] = {"updated_at": time.time()}
        if acquirer_id != tx.acquirer_id:
            changes["acquirer_id"] = acquirer_id
        try:
            await self._store.transition(tx.id, TxState.STOOD_IN, TxState.ADVISED, changes)
        except CasFailed as exc:
            return exc.current.state is TxState.ADVISED  # another process advised it first
        _log.info("advised", tx=tx.id, rrn=tx.rrn, acquirer=acquirer_id)
        return True

    # --- the work list while there is no store-and-forward queue -----------------------
    async def scan(self) -> int:
        """Advise every STOOD_IN transaction, if this process holds the recovery lease;
        returns how many were acknowledged."""
        ttl = self._interval * LEASE_SWEEPS
        if not await self._store.acquire_lease(RECOVERY_LEASE, self._owner, ttl, time.time()):
            return 0
        async with self._lock:
            done = 0
            pending = await self._store.transactions_in_state(
                TxState.STOOD_IN, older_than=time.time(), limit=SCAN_LIMIT
            )
            for tx in pending:
                try:
                    done += await self.send(tx)
                except StoreError:
                    _log.warning("advice_store_error", tx=tx.id)
                except Exception:
                    _log.exception("advice_failed", tx=tx.id)
            return done

    def start(self) -> None:
        self._scanner = asyncio.get_running_loop().create_task(self._scan_forever())

    async def _scan_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.scan()
            except StoreError:
                _log.warning("advice_scan_failed")

    async def close(self) -> None:
        if self._scanner is not None:
            self._scanner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scanner
