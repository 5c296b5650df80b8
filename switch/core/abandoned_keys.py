"""Answers for idempotency keys a dead request left IN_FLIGHT (kill -9, a lost process).

Without them every retry under such a key would wait (ABORTED) until the key's 24 h TTL. A
retry that finds the key IN_FLIGHT longer than ``IdempotencyGuard``'s ``abandoned_after_s``
(60 s, far longer than any request may run: budgets are 2 s) completes it with the answer below,
so that retry and every later one replay the same final answer. The answer is derived from what
the store shows, with the words the live path uses for the same situation:

========== ================================== ==================================================
operation  the key's transaction               answer
========== ================================== ==================================================
authorize  none (died before its intent)       96, "ended without effect; retry under a new key"
authorize  RECEIVED (died before its intent)   declined RECEIVED -> DECLINED with 96 (nothing was
                                               sent: the intent is written before any call), 96
authorize  PENDING / UNKNOWN / REVERSAL_...    left to the recovery sweep (91,
switch.recovery.reversals) authorize  REVERSED                            91 with the transaction
(what the sweep answers) authorize  any other state (the outcome was    the recorded code and auth
code with the
           recorded, the key's completion not) transaction
capture    CAPTURED / SETTLED                  00 with the transaction
capture    APPROVED                            91 "no answer; retry the capture" (the live path's
                                               unknown outcome; the issuer's capture is
                                               idempotent on the RRN)
void       VOIDED                              00 with the transaction
void       REVERSAL_PENDING / REVERSED         00 "void accepted; reversal queued"
void       APPROVED, its REVERSAL item waiting left waiting: the item reverses it (then 00 as above)
void       APPROVED, no item waiting           96 "ended without effect" (nothing was sent)
refund     APPROVED / DECLINED                 the recorded code with the refund transaction
refund     PENDING / UNKNOWN / REVERSAL_...    91 "no answer from the issuer"
any        none attached, or any other state   96 "ended without effect"/"no recorded answer"
========== ================================== ==================================================

Capture and void attach the authorization to their key when they claim it, a refund its own new
transaction once inserted (``switch.operations``), so the transaction is known here.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import Message

from payswitch import codes
from payswitch.v1 import terminal_pb2
from switch.domain.idempotency import IdempotencyRecord
from switch.domain.saf import SafKind, item_id
from switch.domain.transactions import (
    STAND_IN_STATES,
    CasFailed,
    Changes,
    Transaction,
    TxState,
    TxType,
)
from switch.store.base import Store
from switch.wire.convert import code_to_proto, money, scheme_to_proto, transaction_to_proto

# A request is dead this long past its deadline (budgets are 2 s): its RECEIVED row and its
# key are settled (refund reservations are recomputed after the same bound).
UNSENT_AFTER_S = 60.0
CRASH_MESSAGE = "issuer did not answer in time; reversed"
ABANDONED_MESSAGE = "the first request ended without effect; retry under a new idempotency key"
UNRECORDED_MESSAGE = "the first request ended without a recorded answer; see the transaction"

Builder = Callable[[Store, Transaction | None], Awaitable[Message | None]]
# The operations' answers: each has response_code, message and transaction.
_Answer = TypeVar(
    "_Answer", terminal_pb2.CaptureResponse, terminal_pb2.VoidResponse, terminal_pb2.RefundResponse
)


def _reply(cls: type[_Answer], iso: str, tx: Transaction | None, message: str) -> _Answer:
    resp = cls(response_code=code_to_proto(iso), message=message)
    if tx is not None:
        resp.transaction.CopyFrom(transaction_to_proto(tx))
    return resp


async def _capture(_store: Store, tx: Transaction | None) -> Message | None:
    cls = terminal_pb2.CaptureResponse
    if tx is None:
        return _reply(cls, codes.SYSTEM_MALFUNCTION, None, ABANDONED_MESSAGE)
    if tx.state in (TxState.CAPTURED, TxState.SETTLED):
        return _reply(cls, codes.APPROVED, tx, "")
    if tx.state is TxState.APPROVED or tx.state in STAND_IN_STATES:
        return _reply(cls, codes.ISSUER_UNAVAILABLE, tx, "no answer; retry the capture")
    return _reply(cls, codes.SYSTEM_MALFUNCTION, tx, UNRECORDED_MESSAGE)


async def _void(store: Store, tx: Transaction | None) -> Message | None:
    cls = terminal_pb2.VoidResponse
    if tx is None:
        return _reply(cls, codes.SYSTEM_MALFUNCTION, None, ABANDONED_MESSAGE)
    if tx.state is TxState.VOIDED:
        return _reply(cls, codes.APPROVED, tx, "")
    if tx.state in (TxState.REVERSAL_PENDING, TxState.REVERSED):
        return _reply(cls, codes.APPROVED, tx, "void accepted; reversal queued")
    if tx.state is TxState.APPROVED or tx.state in STAND_IN_STATES:
        item = await store.saf_get(item_id(SafKind.REVERSAL, tx.id))
        if item is not None and item.live:
            return None  # the void's intent will reverse it: answer once it has
        return _reply(cls, codes.SYSTEM_MALFUNCTION, tx, ABANDONED_MESSAGE)
    return _reply(cls, codes.SYSTEM_MALFUNCTION, tx, UNRECORDED_MESSAGE)


async def _refund(_store: Store, tx: Transaction | None) -> Message | None:
    cls = terminal_pb2.RefundResponse
    if tx is None:
        return _reply(cls, codes.SYSTEM_MALFUNCTION, None, ABANDONED_MESSAGE)
    if tx.state in (TxState.APPROVED, TxState.DECLINED) and tx.response_code:
        return _reply(cls, tx.response_code, tx, "")
    if tx.state in (
        TxState.PENDING,
        TxState.UNKNOWN,
        TxState.REVERSAL_PENDING,
        TxState.REVERSED,
    ):
        return _reply(cls, codes.ISSUER_UNAVAILABLE, tx, "no answer from the issuer")
    return _reply(cls, codes.SYSTEM_MALFUNCTION, tx, UNRECORDED_MESSAGE)


def authorize_reply(tx: Transaction, iso: str, message: str) -> terminal_pb2.AuthorizeResponse:
    """An authorization's answer rebuilt from its stored transaction (the request is gone)."""
    resp = terminal_pb2.AuthorizeResponse(
        response_code=code_to_proto(iso),
        auth_code=tx.auth_code if iso == codes.APPROVED else "",  # field 38: approvals only
        stan=tx.stan,
        amount=money(tx.amount_minor, tx.currency),
        masked_pan=tx.masked_pan,
        message=message,
        transaction_id=tx.id,
        rrn=tx.rrn,
        acquirer_id=tx.acquirer_id,
        stood_in=tx.state in STAND_IN_STATES,
    )
    if tx.scheme:
        resp.scheme = scheme_to_proto(tx.scheme)
    return resp


async def _authorize(store: Store, tx: Transaction | None) -> Message | None:
    if tx is None:
        return terminal_pb2.AuthorizeResponse(
            response_code=code_to_proto(codes.SYSTEM_MALFUNCTION), message=ABANDONED_MESSAGE
        )
    if tx.state is TxState.RECEIVED:
        # The request died before its intent (PENDING) was durable, so nothing was sent: the
        # intent is written before any call leaves. Decline it so it lingers nowhere.
        tx = await _decline(store, tx, time.time())
        if tx is None:
            return None  # it moved on after all: the next retry looks again
        return authorize_reply(tx, codes.SYSTEM_MALFUNCTION, ABANDONED_MESSAGE)
    if tx.state in _SWEPT:
        return None  # the recovery sweep reverses it and answers 91
    if tx.state is TxState.REVERSED:
        return authorize_reply(tx, codes.ISSUER_UNAVAILABLE, CRASH_MESSAGE)
    return authorize_reply(tx, tx.response_code or codes.SYSTEM_MALFUNCTION, UNRECORDED_MESSAGE)


async def _decline(store: Store, tx: Transaction, now: float) -> Transaction | None:
    """RECEIVED -> DECLINED with 96 for a request that died before its intent; None when the
    transaction moved on meanwhile."""
    try:
        return await store.transition(
            tx.id,
            TxState.RECEIVED,
            TxState.DECLINED,
            Changes(response_code=codes.SYSTEM_MALFUNCTION, updated_at=now),
        )
    except CasFailed:
        return None


_SWEPT = frozenset({TxState.PENDING, TxState.UNKNOWN, TxState.REVERSAL_PENDING})

_BUILDERS: dict[str, Builder] = {
    "authorize": _authorize,
    "capture": _capture,
    "void": _void,
    "refund": _refund,
}


async def abandoned_answer(store: Store, record: IdempotencyRecord) -> tuple[bytes, str] | None:
    """(serialised answer, transaction id) to complete ``record`` with, or None to leave it
    IN_FLIGHT (the recovery sweep or a waiting item will settle it first). The caller has
    checked that the key is old enough to be abandoned."""
    build = _BUILDERS.get(record.operation)
    if build is None:
        return None
    tx = None
    if record.transaction_id:
        tx = await store.get_transaction(record.transaction_id)
    resp = await build(store, tx)
    if resp is None:
        return None
    return resp.SerializeToString(), tx.id if tx is not None else ""


async def decline_unsent(store: Store, now: float, limit: int = 500) -> int:
    """Decline authorizations a dead request left RECEIVED (its intent never became durable, so
    nothing was sent): RECEIVED -> DECLINED with 96, so no row lingers in flight. The key, if a
    retry comes, then answers the recorded 96 (``abandoned_answer``). Returns how many."""
    declined = 0
    for tx in await store.transactions_in_state(
        TxState.RECEIVED, older_than=now - UNSENT_AFTER_S, limit=limit
    ):
        if tx.type is not TxType.AUTHORIZATION or tx.deadline_at + UNSENT_AFTER_S > now:
            continue
        if await _decline(store, tx, now) is not None:
            declined += 1
    return declined
