"""Reversals of authorizations whose outcome is unknown, and of voids.

The store is the queue: a transaction in UNKNOWN or REVERSAL_PENDING (or PENDING past its
deadline, left by a crash) is work. ``schedule`` starts a worker task at once for what this
process saw itself; ``scan`` sweeps the store at start and every ``scan_interval_s`` so
nothing is forgotten across a restart or a dead process. With several switch processes on
one store the sweep runs in one of them at a time: the one holding the ``recovery`` lease
(a compare-and-set in the store, renewed every sweep, taken over when its holder dies).

Each attempt is sent with exponential backoff and full jitter until the acquirer
acknowledges; the issuer releases the hold idempotently (a reversal of an RRN it never saw
is acknowledged and remembered, so a late authorization cannot place a hold).

Issue 5 extends this into the full store-and-forward queue with per-item leases and a
dead-letter queue; today an item that exhausts ``max_attempts`` stays REVERSAL_PENDING and is
picked up again by the next scan.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid

from payswitch import codes
from payswitch.logs import get as get_logger
from payswitch.v1 import network_pb2
from switch.connectors import Connectors, OutcomeUnknown
from switch.convert import money, scheme_to_proto
from switch.store.base import StoreError, Transaction, TxState

_log = get_logger("switch.reversals")

RECOVERY_LEASE = "recovery"
# The lease outlives this many sweep intervals, so a live holder always renews it in time.
LEASE_SWEEPS = 3

# A node that answers these did not deliver the reversal (no time left, system error): resend.
_RETRY_CODES = frozenset({codes.ISSUER_UNAVAILABLE, codes.SYSTEM_MALFUNCTION})


class Reverser:
    def __init__(
        self,
        store,
        connectors: Connectors,
        *,
        max_attempts: int = 8,
        base_delay_s: float = 0.1,
        max_delay_s: float = 5.0,
        attempt_timeout_s: float = 2.0,
        scan_interval_s: float = 5.0,
    ) -> None:
        self._store = store
        self._connectors = connectors
        self._max_attempts = max_attempts
        self._base = base_delay_s
        self._cap = max_delay_s
        self._attempt_timeout = attempt_timeout_s
        self._scan_interval = scan_interval_s
        self._tasks: dict[str, asyncio.Task] = {}
        self._scanner: asyncio.Task | None = None
        self._rng = random.Random()
        # This process's identity as a lease owner.
        self._owner = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"

    # --- scheduling ---------------------------------------------------------------
    def schedule(self, tx_id: str) -> None:
        """Reverse a stored transaction (UNKNOWN, REVERSAL_PENDING, or stale PENDING)."""
        if tx_id in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(self._run(tx_id))
        self._tasks[tx_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(tx_id, None))

    def schedule_unrecorded(self, tx: Transaction) -> None:
        """Reverse from memory an approval the store could not record (store down)."""
        key = "mem:" + tx.id
        if key in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(self._send_until_acked(tx))
        self._tasks[key] = task
        task.add_done_callback(lambda _t: self._tasks.pop(key, None))

    def pending(self) -> int:
        return len(self._tasks)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait for every running reversal task (tests, shutdown); False on timeout."""
        tasks = list(self._tasks.values())
        if not tasks:
            return True
        done, _ = await asyncio.wait(tasks, timeout=timeout)
        return len(done) == len(tasks)

    # --- recovery -----------------------------------------------------------------
    async def recover(self) -> int:
        """Schedule every transaction that needs reversing; returns how many."""
        now = time.time()
        found = 0
        for state in (TxState.PENDING, TxState.UNKNOWN, TxState.REVERSAL_PENDING):
            for tx in await self._store.transactions_in_state(state, older_than=now, limit=500):
                self.schedule(tx.id)
                found += 1
        return found

    async def scan(self) -> int:
        """One sweep, if this process holds the recovery lease; returns what it scheduled."""
        lease_ttl = self._scan_interval * LEASE_SWEEPS
        if not await self._store.acquire_lease(RECOVERY_LEASE, self._owner, lease_ttl, time.time()):
            return 0
        return await self.recover()

    def start(self) -> None:
        self._scanner = asyncio.get_running_loop().create_task(self._scan_forever())

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
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # --- the work -------------------------------------------------------------------
    async def _run(self, tx_id: str) -> None:
        try:
            tx = await self._store.get_transaction(tx_id)
            if tx is None:
                return
            if tx.state is TxState.PENDING:
                if tx.deadline_at > time.time():
                    return  # still in flight in some process
                tx = await self._store.transition(tx.id, TxState.PENDING, TxState.UNKNOWN)
            if tx.state is TxState.UNKNOWN:
                tx = await self._store.transition(
                    tx.id, TxState.UNKNOWN, TxState.REVERSAL_PENDING, {"updated_at": time.time()}
                )
            if tx.state is not TxState.REVERSAL_PENDING:
                return
            if await self._send_until_acked(tx):
                await self._store.transition(
                    tx.id, TxState.REVERSAL_PENDING, TxState.REVERSED, {"updated_at": time.time()}
                )
                _log.info("reversed", tx=tx.id, rrn=tx.rrn)
        except StoreError:
            _log.warning("reversal_store_error", tx=tx_id)
        except Exception:
            _log.exception("reversal_failed", tx=tx_id)

    async def _send_until_acked(self, tx: Transaction) -> bool:
        msg = network_pb2.NetworkReversal(
            original_rrn=tx.rrn,
            bin=tx.bin,
            scheme=scheme_to_proto(tx.scheme),
            acquirer_id=tx.acquirer_id,
            amount=money(tx.amount_minor, tx.currency),
            reason=network_pb2.REVERSAL_REASON_TIMEOUT,
        )
        conn = self._connectors.get(tx.acquirer_id)
        for attempt in range(self._max_attempts):
            try:
                result = await conn.reverse(msg, self._attempt_timeout)
            except OutcomeUnknown:
                result = None
            if result is not None:
                iso = codes.to_iso(result.response_code)
                if iso == codes.APPROVED:
                    return True
                if iso not in _RETRY_CODES:
                    _log.error("reversal_refused", tx=tx.id, code=iso)
                    return False
            delay = self._rng.uniform(0, min(self._cap, self._base * 2**attempt))
            await asyncio.sleep(delay)
        _log.warning("reversal_attempts_exhausted", tx=tx.id)
        return False
