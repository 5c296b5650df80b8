"""Refund: a credit to the cardholder, its own transaction linked to a captured original.

The refunded amount is reserved on the original (compare-and-set on refunded_minor, never
above what was captured), so concurrent refunds cannot exceed the capture; a declined refund
gives its reservation back. An unknown outcome keeps the reservation (the issuer's refund is
idempotent on the refund's RRN, so resending is safe). The refund is stored before it
reserves (``switch.recovery.refund_reservations.begin_refund``), so a crash never leaves a
reservation no refund owns; recovery releases a dead request's (``release_orphans``).
"""

from __future__ import annotations

import time

from payswitch import codes
from payswitch.crashpoint import crashpoint
from payswitch.v1 import network_pb2, terminal_pb2
from switch.backoffice.batches.join import intend, join
from switch.core.budget import Budget
from switch.core.sequences import rrn_of
from switch.domain.batches import ItemKind
from switch.domain.transactions import Changes, DuplicateTransmission, Transaction, TxState, TxType
from switch.operations.common import authenticate, current_state, idempotent, load_own
from switch.recovery.refund_reservations import TooManyRefunds, begin_refund, reserve
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

_REFUNDABLE = (TxState.CAPTURED, TxState.SETTLED)
_CAS_TRIES = 16


async def refund(
    svc: Services, req: terminal_pb2.RefundRequest, budget: Budget
) -> terminal_pb2.RefundResponse:
    validation.idempotency_key(req.idempotency_key)
    validation.identifier(req.terminal_id, "terminal_id")
    ident = svc.registry.identity(req.terminal_id)
    validation.transaction_id(req.original_transaction_id, "original_transaction_id")
    validation.amount(req.amount, req.HasField("amount"))
    validation.stan(req.stan)
    when = validation.local_time(
        req.local_time, now=time.time(), window_s=svc.config.local_time_window_s
    )
    ksn, fingerprint = await authenticate(svc, req)
    original = await load_own(
        svc,
        req.terminal_id,
        req.original_transaction_id,
        "original_transaction_id",
        follow_up=True,
    )
    if req.amount.currency != original.currency:
        raise InvalidArgument("amount.currency", "must be the original sale's currency")
    amount = req.amount.minor_units

    async def work() -> tuple[terminal_pb2.RefundResponse, str]:
        current = await current_state(svc, original.id)
        if current.state not in _REFUNDABLE:
            raise FailedPrecondition(
                f"original_transaction_id: a {current.state.value} sale cannot be refunded"
            )
        if amount > current.captured_minor - current.refunded_minor:
            return _answer(codes.INVALID_AMOUNT, None, "more than captured and not refunded"), ""
        now = time.time()
        tx = Transaction(
            id=svc.new_id(),
            type=TxType.REFUND,
            state=TxState.RECEIVED,
            terminal_id=req.terminal_id,
            merchant_id=ident.merchant.id,
            stan=req.stan,
            local_date=when.date().isoformat(),
            local_time=req.local_time,
            amount_minor=amount,
            currency=current.currency,
            card_token=current.card_token,
            masked_pan=current.masked_pan,
            bin=current.bin,
            scheme=current.scheme,
            rrn=rrn_of(await svc.rrns.next()),
            created_at=now,
            updated_at=now,
            deadline_at=budget.wall_deadline(),
            acquirer_id=current.acquirer_id,
            original_id=current.id,
            idempotency_key=req.idempotency_key,
            mcc=current.mcc,
        )
        attach = None
        if req.idempotency_key:
            # Before anything leaves: a key its request leaves behind is answered from this
            # refund's state (``switch.core.abandoned_keys``).
            async def attach() -> None:
                await svc.guard.attach(req.terminal_id, req.idempotency_key, tx.id)

        try:
            tx = await begin_refund(svc.store, tx, attach)
        except DuplicateTransmission:
            return _answer(codes.DUPLICATE_TRANSMISSION, None, "duplicate transmission"), ""
        except TooManyRefunds:
            raise FailedPrecondition(
                "original_transaction_id: too many concurrent refunds; retry"
            ) from None
        if tx.state is TxState.DECLINED:
            if tx.response_code == codes.INVALID_AMOUNT:
                return _answer(
                    codes.INVALID_AMOUNT, None, "more than captured and not refunded"
                ), ""
            return _answer(tx.response_code, tx, "refund abandoned"), tx.id
        await intend(svc, tx, ItemKind.REFUND)  # before anything leaves: see batches.join
        msg = network_pb2.NetworkRefund(
            rrn=tx.rrn,
            original_rrn=current.rrn,
            bin=tx.bin,
            scheme=scheme_to_proto(tx.scheme),
            acquirer_id=tx.acquirer_id,
            amount=money(amount, tx.currency),
        )
        if current.billing_currency:  # a converted sale: the scheme stamps the day's rate
            msg.conversion.billing_amount.currency = current.billing_currency
        try:
            result = await svc.connectors.get(tx.acquirer_id).refund(msg, budget.remaining())
        except OutcomeUnknown:
            tx = await svc.store.transition(
                tx.id,
                TxState.PENDING,
                TxState.UNKNOWN,
                Changes(response_code=codes.ISSUER_UNAVAILABLE),
            )
            return _answer(codes.ISSUER_UNAVAILABLE, tx, "no answer from the issuer"), tx.id
        iso = codes.to_iso(result.response_code)
        approved = iso == codes.APPROVED
        changes = Changes(response_code=iso, updated_at=time.time())
        if approved and result.HasField("conversion"):  # credited in the billing currency
            changes = billed(result.conversion, changes)
        tx = await svc.store.transition(
            tx.id, TxState.PENDING, TxState.APPROVED if approved else TxState.DECLINED, changes
        )
        if not approved:
            await reserve(svc.store, original.id, -amount)
        else:
            crashpoint("refund.approved")  # APPROVED, not yet in a batch: the mark covers it
            await join(svc, tx, ItemKind.REFUND)
        return _answer(iso, tx), tx.id

    return await idempotent(
        svc,
        req=req,
        ksn=ksn,
        fingerprint=fingerprint,
        budget=budget,
        response_type=terminal_pb2.RefundResponse,
        work=work,
        local_date=when.date().isoformat(),
        stan=req.stan,
    )


def _answer(iso: str, tx: Transaction | None, message: str = "") -> terminal_pb2.RefundResponse:
    resp = terminal_pb2.RefundResponse(response_code=code_to_proto(iso), message=message)
    if tx is not None:
        resp.transaction.CopyFrom(transaction_to_proto(tx))
    return resp
