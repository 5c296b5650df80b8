"""Idempotency keys: claim, replay, refuse, wait. The one helper for the authorization
pipeline and the operations: ``IdempotencyGuard.claim`` gives a ``KeyHold`` (this request owns
the key: attach, complete or release it) or a ``Replay``; ``IdempotencyGuard.once`` runs an
operation under a key from claim to answer.

- same key + same content (fingerprint) + completed -> the stored answer, replayed;
- same key + different content -> FAILED_PRECONDITION;
- same key + same content + still in flight -> wait for the first answer: on an in-process
  future when the first request runs here, otherwise by polling the store (another switch
  process, or a restart), until the budget runs out -> ABORTED, which terminals retry.

Keys are scoped to the terminal and live ``ttl_s`` (24 h by default, longer than any terminal
retries). The fingerprint covers the operation and every content field, never the key itself.

Keys a crashed process left IN_FLIGHT must not block retries for the whole TTL:
- an authorization that got as far as its intent has its transaction attached to the key; the
  recovery sweep reverses that transaction and completes the key with 91
  (``switch.recovery.reversals``), so retries are ABORTED (retryable) until then and replay the 91
  afterwards;
- an authorization key still without a transaction after ``abandoned_after_s`` (far longer
  than any request may run) belongs to a request that died before its intent: nothing was
  stored or sent. A retry completes it with 96 ("ended without effect") and replays that, so
  every retry under the key gets the same final answer and the terminal starts again under a
  new key. (Deleting the claim instead would let two concurrent retries both take the key.)
- a capture, void or refund key still IN_FLIGHT after ``abandoned_after_s`` is completed the
  same way by a retry, from the state of the transaction attached to it (the live path's answer
  for that state: ``switch.core.abandoned_keys``). No sweep can find these keys (a transaction
  does not name the keys of its follow-ups), so the retry after the bound is where it happens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar, cast

from google.protobuf.message import Message

from payswitch import codes
from payswitch.logs import get as get_logger
from switch.core.abandoned_keys import abandoned_answer
from switch.core.budget import Budget
from switch.domain.errors import StoreError
from switch.domain.idempotency import Claim, IdempotencyRecord, IdemStatus
from switch.store.base import Store
from switch.wire.errors import Aborted, ApiError, FailedPrecondition, Unavailable

M = TypeVar("M", bound=Message)
_log = get_logger("switch.idempotency")
_SYSTEM_MALFUNCTION = codes.to_enum(codes.SYSTEM_MALFUNCTION)

DEFAULT_TTL_S = 24 * 3600.0
# An IN_FLIGHT key this old was left by a dead request (budgets are 2 s).
ABANDONED_AFTER_S = 60.0


@dataclass(slots=True)
class Replay:
    """A completed earlier answer for this key."""

    response: bytes
    transaction_id: str


@dataclass(slots=True)
class KeyHold:
    """An idempotency key this request owns, from its claim until it answers or gives the key
    back; either settles it, once. Store failures while settling are logged, never raised:
    the answer the terminal gets stands (a key left IN_FLIGHT is settled later, see above)."""

    guard: IdempotencyGuard
    scope: str
    key: str
    operation: str
    settled: bool = False

    async def attach(self, transaction_id: str) -> None:
        """Name the transaction the request acts on (StoreError when it cannot be written)."""
        await self.guard.attach(self.scope, self.key, transaction_id)

    async def complete(self, response: bytes, transaction_id: str) -> None:
        """Keep ``response`` as the key's answer and wake this process's waiters."""
        if self.settled:
            return
        self.settled = True
        try:
            await self.guard.complete(self.scope, self.key, response, transaction_id)
        except StoreError:
            _log.error("idempotency_complete_failed", operation=self.operation)

    def completed(self, response: bytes, stored: bool) -> None:
        """The store completed the key with the outcome in one write (``record_with_answer``):
        wake the waiters; ``stored`` False when the key's completion failed there."""
        self.settled = True
        self.guard.answered(self.scope, self.key, response)
        if not stored:
            _log.error("idempotency_complete_failed", operation=self.operation)

    async def release(self) -> None:
        """Give the key back after a request that changed nothing, so a retry runs afresh."""
        if self.settled:
            return
        self.settled = True
        try:
            await self.guard.release(self.scope, self.key)
        except StoreError:
            _log.error("idempotency_release_failed", operation=self.operation)


class IdempotencyGuard:
    def __init__(
        self,
        store: Store,
        ttl_s: float = DEFAULT_TTL_S,
        abandoned_after_s: float = ABANDONED_AFTER_S,
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._abandoned_after_s = abandoned_after_s
        self._inflight: dict[tuple[str, str], asyncio.Future[bytes]] = {}

    async def claim(
        self, scope: str, key: str, operation: str, fingerprint: str, budget: Budget
    ) -> KeyHold | Replay:
        """A KeyHold when this request now owns the key; a Replay when an answer exists."""
        claim: Claim = await self._store.claim_idempotency(
            scope, key, operation, fingerprint, self._ttl_s, time.time()
        )
        if claim.claimed:
            self._inflight[(scope, key)] = asyncio.get_running_loop().create_future()
            return KeyHold(self, scope, key, operation)
        record = claim.record
        self._check_same(record, operation, fingerprint)
        if record.status is IdemStatus.COMPLETED:
            return Replay(record.response, record.transaction_id)
        return await self._wait(scope, key, operation, fingerprint, budget, record)

    @staticmethod
    def _check_same(record: IdempotencyRecord, operation: str, fingerprint: str) -> None:
        if record.operation != operation or record.fingerprint != fingerprint:
            raise FailedPrecondition(
                "idempotency_key: already used for a different request on this terminal"
            )

    async def _wait(
        self,
        scope: str,
        key: str,
        operation: str,
        fingerprint: str,
        budget: Budget,
        record: IdempotencyRecord,
    ) -> Replay:
        local = self._inflight.get((scope, key))
        if local is not None and self._abandoned(record):
            # Far past any budget: the holder here is stuck or was abandoned without settling
            # the key (seeds 3037 and 3042 answered every retry ABORTED for minutes). Ask the
            # store instead, which settles a dead request's key (``_settle_abandoned``).
            local = None
        if local is not None:
            timeout = max(budget.left() - budget.margin_s, 0.0)
            try:
                response = await asyncio.wait_for(asyncio.shield(local), timeout)
            except TimeoutError:
                raise Aborted("idempotency_key: the first request is still in flight") from None
            if not response:  # the first request was released without effect
                raise Aborted("idempotency_key: the first request ended without effect; retry")
            done = await self._store.get_idempotency(scope, key, time.time())
            return Replay(response, done.transaction_id if done else "")
        # A key a dead request left is settled at once, whatever the budget left: a retry that
        # arrives with little time (a short deadline, a slow hop before this stage) must still
        # end the wait for good (campaign seed 3042: every retry came with ~0 s left and was
        # answered ABORTED before its first look at the store).
        abandoned = await self._settle_abandoned(record)
        if abandoned is not None:
            return abandoned
        delay = 0.005
        while budget.left() - budget.margin_s > delay:
            await asyncio.sleep(delay)  # polling the store for another process's answer
            now = await self._store.get_idempotency(scope, key, time.time())
            if now is None:
                break
            self._check_same(now, operation, fingerprint)
            if now.status is IdemStatus.COMPLETED:
                return Replay(now.response, now.transaction_id)
            abandoned = await self._settle_abandoned(now)
            if abandoned is not None:
                return abandoned
            delay = min(delay * 2, 0.1)
        raise Aborted("idempotency_key: the first request is still in flight")

    async def _settle_abandoned(self, record: IdempotencyRecord) -> Replay | None:
        """Complete a key a dead request left IN_FLIGHT, once it is old enough, with the
        answer its transaction's state calls for (``switch.core.abandoned_keys``)."""
        if not self._abandoned(record):
            return None
        settled = await abandoned_answer(self._store, record)
        if settled is None:
            return None
        response, tx_id = settled
        await self._store.complete_idempotency(record.scope, record.key, response, tx_id)
        self.answered(record.scope, record.key, response)  # a stuck local holder's waiters too
        return Replay(response, tx_id)

    def _abandoned(self, record: IdempotencyRecord) -> bool:
        """The key was claimed longer ago than any request may run (``abandoned_after_s``)."""
        return time.time() - record.created_at >= self._abandoned_after_s

    async def attach(self, scope: str, key: str, transaction_id: str) -> None:
        await self._store.attach_transaction(scope, key, transaction_id)

    async def complete(self, scope: str, key: str, response: bytes, transaction_id: str) -> None:
        """Store the answer, then wake local waiters (even if the store write failed, the
        waiters in this process get the answer the terminal got)."""
        try:
            await self._store.complete_idempotency(scope, key, response, transaction_id)
        finally:
            self.answered(scope, key, response)

    def answered(self, scope: str, key: str, response: bytes) -> None:
        """Wake this process's waiters on the key with the answer the terminal got; the
        caller has completed the key in the store itself (``Store.record_with_answer``) or
        failed to."""
        fut = self._inflight.pop((scope, key), None)
        if fut is not None and not fut.done():
            fut.set_result(response)

    async def release(self, scope: str, key: str) -> None:
        """Give the key back after a request that changed nothing (e.g. store refused)."""
        fut = self._inflight.pop((scope, key), None)
        if fut is not None and not fut.done():
            fut.set_result(b"")
        await self._store.release_idempotency(scope, key)

    async def once(
        self,
        *,
        scope: str,
        key: str,
        operation: str,
        fingerprint: str,
        budget: Budget,
        response_type: type[M],
        work: Callable[[], Awaitable[tuple[M, str]]],
        attach: str = "",
        seal: Callable[[M], Awaitable[None]] | None = None,
    ) -> M:
        """Run ``work`` once per (terminal, key): replay a completed answer, refuse a reused
        key with other content, wait for one still in flight. ``work`` returns (response,
        transaction id). ``attach``: the transaction the operation acts on, recorded on the
        key before ``work`` runs, so that a key a dead request leaves IN_FLIGHT can be
        answered from that transaction's state (``switch.core.abandoned_keys``). ``seal``
        finishes the answer (response MAC) before it is kept, so a replay carries it."""
        claimed = await self.claim(scope, key, operation, fingerprint, budget)
        if isinstance(claimed, Replay):
            replayed = response_type.FromString(claimed.response)
            if seal is not None and not getattr(replayed, "mac", b""):
                # An answer settled for a dead request (``abandoned_keys``) was never sealed;
                # the retry has the same content, its KSN included, so seal it for that.
                await seal(replayed)
            return replayed
        if attach:
            try:
                await claimed.attach(attach)
            except StoreError:
                await claimed.release()
                raise Unavailable("state store unavailable; nothing was done, retry") from None
        # Shielded: a caller that goes away (its deadline, a cancelled RPC) must not abandon the
        # work half done with the key held in this process, where every retry would wait on it
        # and be answered ABORTED (the fault campaign's seed 15); the work finishes and keeps
        # its answer under the key for the retry.
        return await asyncio.shield(self._run_held(claimed, operation, response_type, work, seal))

    @staticmethod
    async def _run_held(
        claimed: KeyHold,
        operation: str,
        response_type: type[M],
        work: Callable[[], Awaitable[tuple[M, str]]],
        seal: Callable[[M], Awaitable[None]] | None,
    ) -> M:
        try:
            response, tx_id = await work()
        except ApiError:
            await claimed.release()  # raised by precondition checks before any effect
            raise
        except Exception:
            # Something may have happened (a network call, a write): the key's answer is
            # final, 96, so a retry under it never repeats the effect; the transaction shows
            # the truth.
            _log.exception("operation_failed", operation=operation)
            # Every operation's answer has a response_code; Message's stub knows no fields.
            answer = cast(Callable[..., M], response_type)
            response, tx_id = answer(response_code=_SYSTEM_MALFUNCTION), ""
        if seal is not None:
            await seal(response)
        await claimed.complete(response.SerializeToString(), tx_id)
        return response
