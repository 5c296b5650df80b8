"""Refund reservations on the original sale, crash-safe.

A refund reserves its amount on the original (compare-and-set on ``refunded_minor``, never
past ``captured_minor``), so concurrent refunds cannot exceed the capture. The order of the
refund's first writes (``begin_refund``) keeps every reservation owned by a stored refund:
insert the refund (RECEIVED), attach it to the idempotency key, reserve, then RECEIVED ->
PENDING before anything leaves. A crash can therefore leave a RECEIVED refund that did or did
not reserve, never a reservation without a refund (the gap of the older order, reserve first,
which raised the reservation forever).

Recovery (``release_orphans``, in the recovery sweep of ``switch.recovery.reversals``): a refund
still RECEIVED ``ORPHAN_AFTER_S`` past its deadline belongs to a dead request (nothing was sent).
Its original's reservation is recomputed from its refunds: every refund not DECLINED, not
REVERSED and not such a dead one holds its amount. The same recompute runs when recovery
reverses a refund whose answer never came (``release_reversed``, from the REVERSAL item: until
campaign seeds 3018 and 3056 the sale kept a reversed refund's amount reserved forever).
The recompute is a compare-and-set on the ``refunded_minor`` read *before* the refunds were
listed, so a refund that reserves meanwhile makes it fail (the next sweep, or the item's next
attempt, tries again); it is skipped while any other refund of the original is RECEIVED and
live (it may have reserved or not). Then the dead refunds are declined (RECEIVED -> DECLINED,
96), which makes their keys answer 96 (``switch.core.abandoned_keys``). A request that was only
slow and finds its refund declined does not release anything (recovery accounted for it).
Left open: a request stalled more than ``ORPHAN_AFTER_S`` between its reservation and its
RECEIVED -> PENDING, resuming between the recompute and the decline, goes on with its
reservation released (the issuer still refuses a refund beyond what it posted).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from payswitch import codes
from payswitch.logs import get as get_logger
from switch.core.abandoned_keys import UNSENT_AFTER_S
from switch.domain.errors import StoreError
from switch.domain.transactions import CasFailed, Changes, Expect, Transaction, TxState, TxType
from switch.store.base import Store

_log = get_logger("switch.refunds")

ORPHAN_AFTER_S = UNSENT_AFTER_S  # past the refund's deadline, as for dead authorizations
SCAN_LIMIT = 500
CAS_TRIES = 16
_HOLD_NOTHING = frozenset({TxState.DECLINED, TxState.REVERSED})


class TooManyRefunds(Exception):
    """The reservation lost its compare-and-set ``CAS_TRIES`` times in a row."""


async def reserve(store: Store, original_id: str, delta: int) -> bool:
    """Add ``delta`` to refunded_minor by compare-and-set, never past captured_minor."""
    tx = await store.get_transaction(original_id)
    assert tx is not None, original_id  # the refund's original, loaded by the caller
    for _ in range(CAS_TRIES):
        new = tx.refunded_minor + delta
        if new > tx.captured_minor or new < 0:
            return False
        try:
            await store.compare_and_set(
                original_id,
                Expect(refunded_minor=tx.refunded_minor),
                Changes(refunded_minor=new, updated_at=time.time()),
            )
            return True
        except CasFailed as exc:
            tx = exc.current
    raise TooManyRefunds(original_id)


async def begin_refund(
    store: Store, tx: Transaction, attach: Callable[[], Awaitable[None]] | None = None
) -> Transaction:
    """Insert the refund, attach its key, reserve its amount, move it PENDING (see the
    module's docstring). Returns the refund: PENDING, or DECLINED (13) when the amount is no
    longer available, or DECLINED (96) when recovery declined it as dead meanwhile.
    DuplicateTransmission (nothing stored, nothing reserved) propagates."""
    await store.insert_transaction(tx)
    if attach is not None:
        await attach()
    if not await reserve(store, tx.original_id, tx.amount_minor):
        return await store.transition(
            tx.id,
            TxState.RECEIVED,
            TxState.DECLINED,
            Changes(response_code=codes.INVALID_AMOUNT, updated_at=time.time()),
        )
    try:
        return await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING)
    except CasFailed as exc:
        _log.error("refund_declined_by_recovery", tx=tx.id)
        return exc.current


async def release_orphans(store: Store, now: float | None = None) -> int:
    """Recover the refunds dead requests left RECEIVED; returns how many were declined."""
    now = time.time() if now is None else now
    dead = [
        tx
        for tx in await store.transactions_in_state(
            TxState.RECEIVED, older_than=now - ORPHAN_AFTER_S, limit=SCAN_LIMIT
        )
        if tx.type is TxType.REFUND and tx.original_id
    ]
    declined = 0
    for original_id in dict.fromkeys(tx.original_id for tx in dead):
        try:
            declined += await _recover_original(store, original_id, now)
        except StoreError:
            _log.warning("refund_recovery_failed", original=original_id)
    return declined


async def release_reversed(store: Store, refund: Transaction, now: float | None = None) -> bool:
    """A refund recovery reversed (its answer never came) holds nothing: its original's
    reservation is recomputed from its refunds, as for orphans (crash-safe and idempotent: a
    rerun recomputes the same). False while it cannot be decided yet (another refund of the
    original is RECEIVED and live, or a reservation raced the recompute): retry later."""
    now = time.time() if now is None else now
    dead = await _recompute(store, refund.original_id, now)
    if dead is None:
        return False
    await _decline_dead(store, dead)
    return True


async def _recover_original(store: Store, original_id: str, now: float) -> int:
    dead = await _recompute(store, original_id, now)
    return 0 if dead is None else await _decline_dead(store, dead)


async def _recompute(store: Store, original_id: str, now: float) -> set[str] | None:
    """Set the original's reservation to what its refunds hold (a DECLINED or REVERSED refund,
    or a dead RECEIVED one, holds nothing); the dead RECEIVED refunds' ids, or None when it
    cannot be decided now (see the module docstring)."""
    original = await store.get_transaction(original_id)  # before the refunds: see docstring
    if original is None:
        return set()
    refunds = await store.refunds_of(original_id)
    dead_ids = set()
    holding = 0
    for r in refunds:
        if r.state is TxState.RECEIVED:
            if r.deadline_at + ORPHAN_AFTER_S > now:
                return None  # a live request may be reserving: the next sweep decides
            dead_ids.add(r.id)
        elif r.state not in _HOLD_NOTHING:
            holding += r.amount_minor
    if original.refunded_minor != holding:
        try:
            await store.compare_and_set(
                original_id,
                Expect(refunded_minor=original.refunded_minor),
                Changes(refunded_minor=holding, updated_at=time.time()),
            )
        except CasFailed:
            return None  # a refund reserved meanwhile: the next sweep recomputes
        _log.warning(
            "refund_reservation_released",
            original=original_id,
            released=original.refunded_minor - holding,
        )
    return dead_ids


async def _decline_dead(store: Store, dead_ids: set[str]) -> int:
    declined = 0
    for tx_id in dead_ids:
        try:
            await store.transition(
                tx_id,
                TxState.RECEIVED,
                TxState.DECLINED,
                Changes(response_code=codes.SYSTEM_MALFUNCTION, updated_at=time.time()),
            )
            declined += 1
        except CasFailed:
            pass  # the slow request moved on: it reserved after the recompute
    return declined
