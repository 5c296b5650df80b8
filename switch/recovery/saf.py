"""The store-and-forward queue and its worker.

``enqueue`` writes the item to the store (durable before it returns) and wakes this process's
worker. The worker takes due items (``next_attempt_at`` passed) with a per-item lease, a
compare-and-set in the store, so several switch processes on one store never send the same
item at once; a holder that dies simply lets its lease lapse (``lease_s``) and another takes
the item. Each attempt calls the handler registered for the item's kind with the item's
transaction; True means the far end acknowledged (the handler has made the final state
transition). Otherwise the attempt is counted and the item is due again after an exponential
backoff with full jitter, until ``max_attempts`` or ``max_age_s``: then it is a dead letter,
kept, listed by ``list_items(dead=True)`` and sent again only after ``replay``. A handler that
raises ``Refused`` (the far end answered no, for good) dead-letters the item at once.

Bounded share: with ``share`` set (the switch's admission gate, ``switch.core.concurrency``),
each attempt also takes a background slot: at most ``[switch] background_share`` of the
concurrency limit at once, counted against it, so the reversals an overload leaves behind
neither double the load nor starve (they always get at least one slot).

Handlers: ``REVERSAL`` (``switch.recovery.reversals.Reverser.reverse_once``), ``ADVICE``
(``switch.recovery.advice.Adviser.send``) and ``OFFLINE_ADVICE``
(``switch.backoffice.offline.sales.OfflineSales.deliver``); items of a kind with no handler
registered wait untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

from payswitch.logs import get as get_logger
from payswitch.world.topology import SafConfig
from switch.core import metrics
from switch.core.concurrency import Gate
from switch.domain.errors import StoreError
from switch.domain.saf import (
    Backoff,
    SafItem,
    SafKind,
    after_attempt,
    item_id,
    new_item,
    release,
    replayed,
    settled,
    take_lease,
)
from switch.domain.transactions import Transaction
from switch.store.base import Store

_log = get_logger("switch.recovery.saf")

Handler = Callable[[Transaction], Awaitable[bool]]
BATCH = 200  # due items looked at per pass


_NO_SLOT = contextlib.nullcontext()


class NotDelivered(Exception):
    """A handler's way to say why an attempt failed (kept as the item's ``last_error``)."""


class Refused(NotDelivered):
    """The far end answered and refused for good: the item is dead-lettered at once (listed
    for an operator, never retried by itself); the handler has recorded what follows."""


def new_owner() -> str:
    """This process's identity as a lease owner."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


class SafQueue:
    def __init__(
        self,
        store: Store,
        config: SafConfig | None = None,
        *,
        owner: str | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.config = config or SafConfig()
        c = self.config
        self._backoff = Backoff(c.max_attempts, c.max_age_s, c.base_delay_s, c.max_delay_s)
        self.owner = owner or new_owner()
        self._rng = rng or random.Random()
        self._clock = clock
        self._handlers: dict[SafKind, Handler] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(c.concurrency)
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._share: Gate | None = None

    def share(self, gate: Gate) -> None:
        """Take each attempt's slot from ``gate``'s background share too."""
        self._share = gate

    def _background(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._share.background_slot() if self._share is not None else _NO_SLOT

    # --- the interface ---------------------------------------------------------------
    def register(self, kind: SafKind, handler: Handler) -> None:
        self._handlers[SafKind(kind)] = handler
        self._wake.set()

    async def enqueue(
        self, kind: SafKind, transaction_id: str, not_before: float | None = None
    ) -> SafItem:
        """Durable before it returns; idempotent on (kind, transaction id) (an existing live or
        dead item is left as it is). ``not_before`` (Unix time) delays the first attempt: an
        intent written before its writer sends the message itself (a void's reversal), due
        only if the writer has not settled it by then."""
        now = self._clock()
        fresh = new_item(kind, transaction_id, now)
        if not_before is not None and not_before > now:
            fresh = fresh.copy(next_attempt_at=not_before)
        item = await self._store.saf_put(fresh)
        if item.created_at == fresh.created_at:
            _log.info("saf_enqueued", item=item.id)
        self._wake.set()
        return item

    async def settle(self, kind: SafKind, transaction_id: str) -> SafItem | None:
        """Mark the item done without sending: its writer had the answer itself. None when
        nothing changed (no live item, or a worker holds it and will find nothing to do)."""
        try:
            item = await self._store.saf_update(
                item_id(kind, transaction_id), settled(self._clock())
            )
        except KeyError:
            return None
        if item is not None:
            _log.info("saf_settled", item=item.id)
        return item

    async def list_items(self, dead: bool, limit: int = 100) -> list[SafItem]:
        return await self._store.saf_list(dead, max(1, min(limit, 1000)))

    async def replay(self, item_id: str) -> SafItem:
        """Dead letter -> live, attempts reset, due now. KeyError unknown id, ValueError not
        dead. The item's age restarts too, so ``max_age_s`` gives the replay its full time."""
        item = await self._store.saf_update(item_id, replayed(self._clock()))
        assert item is not None  # replayed() never declines: it raises
        _log.info("saf_replayed", item=item.id)
        self._wake.set()
        return item

    # --- the worker ------------------------------------------------------------------
    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work_forever())

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _work_forever(self) -> None:
        while True:
            try:
                await self.run_once()
                await self.publish_depths()
            except StoreError as exc:
                _log.warning("saf_pass_failed", error=type(exc).__name__)
            except Exception:
                _log.exception("saf_pass_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.poll_interval_s)
            self._wake.clear()

    async def run_once(self) -> int:
        """One pass: start an attempt for every due item this process may take; returns how
        many were started (they run as tasks, at most ``concurrency`` at once)."""
        now = self._clock()
        started = 0
        for item in await self._store.saf_list(False, BATCH, due_before=now):
            if item.id in self._running or item.kind not in self._handlers:
                continue
            task = asyncio.get_running_loop().create_task(self._attempt(item.id))
            self._running[item.id] = task
            task.add_done_callback(functools.partial(self._finished, item.id))
            started += 1
        return started

    def _finished(self, item_id: str, _task: asyncio.Task[None]) -> None:
        self._running.pop(item_id, None)

    async def drain(self, timeout: float) -> bool:
        """Wait for the attempts running now (tests, shutdown); False on timeout."""
        tasks = list(self._running.values())
        if not tasks:
            return True
        done, _ = await asyncio.wait(tasks, timeout=timeout)
        return len(done) == len(tasks)

    async def _attempt(self, item_id: str) -> None:
        async with self._slots, self._background():
            now = self._clock()
            try:
                item = await self._store.saf_update(
                    item_id, take_lease(self.owner, now + self.config.lease_s, now)
                )
            except (StoreError, KeyError) as exc:
                _log.warning("saf_lease_failed", item=item_id, error=type(exc).__name__)
                return
            if item is None:
                return  # another worker holds it, or it is no longer due
            delivered, error, final = await self._deliver(item)
            try:
                after = await self._store.saf_update(
                    item.id,
                    after_attempt(
                        self.owner,
                        delivered,
                        error,
                        self._clock(),
                        self._backoff,
                        self._rng,
                        final=final,
                    ),
                )
            except (StoreError, KeyError) as exc:
                # The lease lapses and the item is tried again: handlers are idempotent.
                _log.warning("saf_record_failed", item=item.id, error=type(exc).__name__)
                return
            if after is None:
                _log.warning("saf_lease_lost", item=item.id)
            elif after.done:
                _log.info("saf_delivered", item=item.id, attempts=after.attempts)
            elif after.dead:
                _log.error("saf_dead_lettered", item=item.id, attempts=after.attempts, error=error)
            else:
                _log.info(
                    "saf_retry",
                    item=item.id,
                    attempts=after.attempts,
                    in_s=round(after.next_attempt_at - self._clock(), 3),
                    error=error,
                )

    async def _deliver(self, item: SafItem) -> tuple[bool, str, bool]:
        """(delivered, the reason it was not, whether that is final)."""
        handler = self._handlers[item.kind]
        try:
            tx = await self._store.get_transaction(item.transaction_id)
            if tx is None:
                return False, "no such transaction", False
            # Bounded, inside the lease: a handler stuck past it must not overlap the next
            # holder's attempt.
            budget = self.config.lease_s * 0.8
            if await asyncio.wait_for(handler(tx), budget):
                return True, "", False
            return False, "not acknowledged", False
        except asyncio.CancelledError:
            with contextlib.suppress(StoreError, KeyError):
                await asyncio.shield(self._store.saf_update(item.id, release(self.owner)))
            raise
        except TimeoutError:
            return False, "attempt timed out", False
        except Refused as exc:
            return False, str(exc), True
        except NotDelivered as exc:
            return False, str(exc), False
        except StoreError as exc:
            return False, f"store: {type(exc).__name__}", False
        except Exception as exc:
            _log.exception("saf_handler_failed", item=item.id)
            return False, f"{type(exc).__name__}: {exc}", False

    async def publish_depths(self) -> None:
        depths = await self._store.saf_depths()
        m = metrics.get()
        for kind in SafKind:
            m.saf_depth.labels(kind.value).set(depths.get((kind.value, False), 0))
            m.dlq_depth.labels(kind.value).set(depths.get((kind.value, True), 0))
