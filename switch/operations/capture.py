"""Capture (completion) of an approved authorization, full or partial.

A capture for less than the authorized amount posts that much; the issuer releases the rest
of the hold. More than authorized answers 13. The capture travels to the issuer through the
acquirer and scheme; only the issuer's 00 moves the transaction to CAPTURED.

A stand-in sale (STOOD_IN, or ADVISED) is captured locally: STOOD_IN | ADVISED -> CAPTURED
(a typed transition, ``switch.domain.transactions.TYPED_TRANSITIONS``) and the batch join, no online
message. The issuer learns of the sale from the advice (which places the hold) and posts the
capture when it is presented in clearing, so the capture works during the very outage that
caused the stand-in, and whether or not the advice has landed yet: the advice is still sent
after the capture (``switch.recovery.advice``) and clearing waits for it
(``switch.backoffice.settlement.standin``). A void of the sale that is still being sent (its
REVERSAL item waits) refuses the capture.
"""

from __future__ import annotations

import time

from payswitch import codes
from payswitch.crashpoint import crashpoint
from payswitch.v1 import network_pb2, terminal_pb2
from switch.backoffice.batches.join import intend, join_settled_state
from switch.core.budget import Budget
from switch.domain.batches import ItemKind
from switch.domain.saf import SafKind, item_id
from switch.domain.transactions import (
    STAND_IN_STATES,
    CasFailed,
    Changes,
    Transaction,
    TxState,
    TxType,
)
from switch.operations.common import (
    authenticate,
    current_state,
    follow_issuer,
    idempotent,
    load_own,
)
from switch.routing.connectors import OutcomeUnknown
from switch.services import Services
from switch.wire import validation
from switch.wire.convert import (
    billed,
    code_to_proto,
    money,
    scheme_to_proto,
    transaction_to_proto,
)
from switch.wire.errors import FailedPrecondition, InvalidArgument


async def capture(
    svc: Services, req: terminal_pb2.CaptureRequest, budget: Budget
) -> terminal_pb2.CaptureResponse:
    validation.idempotency_key(req.idempotency_key)
    validation.identifier(req.terminal_id, "terminal_id")
    validation.transaction_id(req.transaction_id, "transaction_id")
    has_amount = validation.optional_amount(req.amount, req.HasField("amount"))
    ksn, fingerprint = await authenticate(svc, req)
    tx = await load_own(svc, req.terminal_id, req.transaction_id, "transaction_id", follow_up=True)
    if has_amount and req.amount.currency != tx.currency:
        raise InvalidArgument("amount.currency", "must be the authorization's currency")
    amount = req.amount.minor_units if has_amount else tx.amount_minor

    async def work() -> tuple[terminal_pb2.CaptureResponse, str]:
        current = await current_state(svc, tx.id)
        if current.state in STAND_IN_STATES:
            return await _capture_stand_in(svc, current, amount), tx.id
        if current.state is not TxState.APPROVED:
            raise FailedPrecondition(
                f"transaction_id: a {current.state.value} transaction cannot be captured"
            )
        if amount > svc.settlement.capture_ceiling(current.amount_minor, current.mcc):
            return _answer(codes.INVALID_AMOUNT, current, "more than authorized"), tx.id
        msg = network_pb2.NetworkCapture(
            original_rrn=current.rrn,
            bin=current.bin,
            scheme=scheme_to_proto(current.scheme),
            acquirer_id=current.acquirer_id,
            amount=money(amount, current.currency),
            mcc=current.mcc,
        )
        await intend(svc, current, ItemKind.SALE)  # before anything leaves: see batches.join
        try:
            result = await svc.connectors.get(current.acquirer_id).capture(msg, budget.remaining())
        except OutcomeUnknown:
            return _answer(codes.ISSUER_UNAVAILABLE, current, "no answer; retry the capture"), tx.id
        iso = codes.to_iso(result.response_code)
        if iso != codes.APPROVED:
            return _answer(iso, current, "capture declined"), tx.id
        changes = Changes(captured_minor=amount, updated_at=time.time())
        if result.HasField("conversion"):  # what the issuer posted in the billing currency
            changes = billed(result.conversion, changes, captured=True)
        current = await follow_issuer(svc, tx.id, TxState.APPROVED, TxState.CAPTURED, changes)
        crashpoint("capture.captured")  # CAPTURED, not yet in a batch: the mark covers it
        await join_settled_state(svc, current)
        return _answer(codes.APPROVED, current), tx.id

    return await idempotent(
        svc,
        req=req,
        ksn=ksn,
        fingerprint=fingerprint,
        budget=budget,
        response_type=terminal_pb2.CaptureResponse,
        work=work,
        attach=tx.id,
    )


async def _capture_stand_in(
    svc: Services, tx: Transaction, amount: int
) -> terminal_pb2.CaptureResponse:
    """Capture a stand-in sale locally (see the module docstring)."""
    if amount > svc.settlement.capture_ceiling(tx.amount_minor, tx.mcc):
        return _answer(codes.INVALID_AMOUNT, tx, "more than authorized")
    item = await svc.store.saf_get(item_id(SafKind.REVERSAL, tx.id))
    if item is not None and not item.done:
        raise FailedPrecondition("transaction_id: a void of this transaction is in progress")
    changes = Changes(captured_minor=amount, updated_at=time.time())
    await intend(svc, tx, ItemKind.SALE)
    current = tx
    for _ in range(len(STAND_IN_STATES) + 1):  # STOOD_IN may become ADVISED meanwhile
        try:
            current = await svc.store.typed_transition(
                tx.id, current.state, TxState.CAPTURED, TxType.AUTHORIZATION, changes
            )
            break
        except CasFailed as exc:
            current = exc.current
            if current.state not in STAND_IN_STATES:
                break  # a concurrent capture or void won: answer with what it left
    if current.state is not TxState.CAPTURED:
        raise FailedPrecondition(
            f"transaction_id: a {current.state.value} transaction cannot be captured"
        )
    await join_settled_state(svc, current)
    return _answer(codes.APPROVED, current)


def _answer(iso: str, tx: Transaction, message: str = "") -> terminal_pb2.CaptureResponse:
    return terminal_pb2.CaptureResponse(
        response_code=code_to_proto(iso), transaction=transaction_to_proto(tx), message=message
    )
