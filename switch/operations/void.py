"""Void: cancel an approved, not yet captured authorization by a full reversal.

Crash safety: the intent is durable before the reversal leaves. The void first writes the
transaction's REVERSAL item to the store-and-forward queue, due only ``GRACE_S`` after the
void's own deadline, then sends the reversal itself (the answer the terminal waits for):

- the issuer's 00 moves APPROVED -> VOIDED and settles the item (done, never sent);
- a refusal (e.g. 12: already captured at the issuer) leaves the authorization APPROVED,
  settles the item and answers the refusal;
- an unknown outcome still accepts the void (answer 00, state REVERSAL_PENDING): the item is
  the reversal the queue resends until acknowledged (it ends REVERSED), as store-and-forward
  reversals are in card networks.

If the switch dies with the reversal in flight (the issuer may already have released the
hold), the item comes due on a transaction still APPROVED and the queue's handler reverses it
(``switch.recovery.reversals``): the transaction ends REVERSED, in line with the issuer's books. The
store refusing the item sends nothing: UNAVAILABLE, the key released, the terminal retries.

A stand-in sale (STOOD_IN or ADVISED, not captured) is voided the same way: the reversal
releases the hold its advice placed at the issuer (or, sent before the advice, leaves the
issuer's "reversed first" marker, so the advice is refused and holds nothing; the adviser
sends no advice for a voided stand-in). Its transitions are the typed stand-in ones
(``switch.domain.transactions.TYPED_TRANSITIONS``): -> VOIDED on 00, -> REVERSAL_PENDING when the
answer is unknown.
"""

from __future__ import annotations

import time

from payswitch import codes
from payswitch.v1 import network_pb2, terminal_pb2
from switch.backoffice.batches.join import join_settled_state
from switch.core.budget import Budget
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
from switch.wire.convert import code_to_proto, money, scheme_to_proto, transaction_to_proto
from switch.wire.errors import FailedPrecondition, Unavailable

# The item of a void in flight comes due this long after the void's deadline: the void has
# settled it by then unless its process died.
GRACE_S = 1.0

_VOIDABLE = frozenset({TxState.APPROVED, *STAND_IN_STATES})


async def void(
    svc: Services, req: terminal_pb2.VoidRequest, budget: Budget
) -> terminal_pb2.VoidResponse:
    validation.idempotency_key(req.idempotency_key)
    validation.identifier(req.terminal_id, "terminal_id")
    validation.transaction_id(req.transaction_id, "transaction_id")
    ksn, fingerprint = await authenticate(svc, req)
    tx = await load_own(svc, req.terminal_id, req.transaction_id, "transaction_id", follow_up=True)

    async def work() -> tuple[terminal_pb2.VoidResponse, str]:
        current = await current_state(svc, tx.id)
        if current.state not in _VOIDABLE:
            raise FailedPrecondition(
                f"transaction_id: a {current.state.value} transaction cannot be voided"
            )
        msg = network_pb2.NetworkReversal(
            original_rrn=current.rrn,
            bin=current.bin,
            scheme=scheme_to_proto(current.scheme),
            acquirer_id=current.acquirer_id,
            amount=money(current.amount_minor, current.currency),
            reason=network_pb2.REVERSAL_REASON_VOID,
        )
        # The intent, durable before anything leaves (see the module's docstring).
        if not await svc.reverser.queue(tx.id, not_before=budget.wall_deadline() + GRACE_S):
            raise Unavailable("state store unavailable; the void was not sent, retry")
        try:
            result = await svc.connectors.get(current.acquirer_id).reverse(msg, budget.remaining())
        except OutcomeUnknown:
            result = None
        if result is None:
            current = await _follow(svc, current, TxState.REVERSAL_PENDING)
            await join_settled_state(svc, current)
            return _answer(codes.APPROVED, current, "void accepted; reversal queued"), tx.id
        iso = codes.to_iso(result.response_code)
        if iso != codes.APPROVED:
            await svc.reverser.settle(tx.id)
            return _answer(iso, current, "void declined"), tx.id
        current = await _follow(svc, current, TxState.VOIDED)
        await svc.reverser.settle(tx.id)
        await join_settled_state(svc, current)
        return _answer(codes.APPROVED, current), tx.id

    return await idempotent(
        svc,
        req=req,
        ksn=ksn,
        fingerprint=fingerprint,
        budget=budget,
        response_type=terminal_pb2.VoidResponse,
        work=work,
        attach=tx.id,
    )


async def _follow(svc: Services, tx: Transaction, to: TxState) -> Transaction:
    """Record the void's outcome from the state it was voided in (a stand-in's typed
    transition; STOOD_IN may have become ADVISED meanwhile: try again from there)."""
    changes = Changes(updated_at=time.time())
    if tx.state is TxState.APPROVED:
        return await follow_issuer(svc, tx.id, TxState.APPROVED, to, changes)
    current = tx
    for _ in range(len(STAND_IN_STATES) + 1):
        try:
            return await svc.store.typed_transition(
                tx.id, current.state, to, TxType.AUTHORIZATION, changes
            )
        except CasFailed as exc:
            current = exc.current
            if current.state not in STAND_IN_STATES:
                break
    return current


def _answer(iso: str, tx: Transaction, message: str = "") -> terminal_pb2.VoidResponse:
    return terminal_pb2.VoidResponse(
        response_code=code_to_proto(iso), transaction=transaction_to_proto(tx), message=message
    )
