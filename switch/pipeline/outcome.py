"""The one place that decides an authorization's final transition.

The stages find facts (the issuer's answer, how far the request got, the stand-in rules'
decision, or a failure); ``decide`` turns them into the transition to record with the answer.
The "record" stage calls it when the pipeline ran to its end, ``Pipeline.finish`` when a stage
ended it early or it failed, so every path records through the same table:

==================================================  ==========================================
what happened                                       transition (response code)
==================================================  ==========================================
sent, no answer in time (``Delivery.UNKNOWN``)      PENDING -> UNKNOWN (91), reversed
the issuer answered                                 PENDING -> APPROVED | DECLINED (its code)
no acquirer could take it, stand-in approved        PENDING -> STOOD_IN (00), advised
no acquirer could take it, stand-in declined        PENDING -> DECLINED (the rule's code)
failed after it may have left                       PENDING -> UNKNOWN (the answer's), reversed
ended or failed before anything left                RECEIVED | PENDING -> DECLINED (the answer's)
==================================================  ==========================================

An issuer's approval that could not be recorded is not a transition: ``Pipeline.finish``
answers 96 and reverses it (``Reverser.schedule_unrecorded``).
"""

from __future__ import annotations

from payswitch import codes
from switch.domain.transactions import Changes, TxState
from switch.pipeline.context import AuthContext, Delivery, Outcome
from switch.wire.convert import billed

UNKNOWN_MESSAGE = "issuer did not answer in time; reversed"


def decide(ctx: AuthContext, now: float) -> Outcome | None:
    """The final transition of ``ctx.tx``, or None when there is none to write (nothing is
    stored, it is recorded already, or the stored state is final)."""
    tx = ctx.tx
    if tx is None or ctx.recorded:
        return None
    if not ctx.failed:
        if ctx.delivery is Delivery.UNKNOWN:
            return Outcome(
                TxState.UNKNOWN,
                Changes(response_code=codes.ISSUER_UNAVAILABLE, updated_at=now),
                reverse=True,
            )
        if ctx.result is not None:
            iso = issuer_code(ctx)
            approved = iso == codes.APPROVED
            changes = Changes(
                response_code=iso,
                auth_code=ctx.result.auth_code if approved else "",
                updated_at=now,
            )
            if ctx.result.HasField("conversion"):  # a card billed in another currency
                changes = billed(ctx.result.conversion, changes)
            return Outcome(TxState.APPROVED if approved else TxState.DECLINED, changes)
        if ctx.standin is not None:
            if ctx.standin.approved:
                return Outcome(
                    TxState.STOOD_IN,
                    Changes(
                        response_code=codes.APPROVED,
                        auth_code=ctx.standin.auth_code,
                        updated_at=now,
                    ),
                    advise=True,
                )
            return Outcome(
                TxState.DECLINED, Changes(response_code=ctx.standin.code, updated_at=now)
            )
    if tx.state is TxState.PENDING and ctx.delivery.may_have_left:
        return Outcome(TxState.UNKNOWN, Changes(response_code=ctx.code), reverse=True)
    if tx.state in (TxState.RECEIVED, TxState.PENDING):
        return Outcome(TxState.DECLINED, Changes(response_code=ctx.code, updated_at=now))
    return None


def issuer_code(ctx: AuthContext) -> str:
    """The issuer's ISO code (96 for an answer without a known one)."""
    assert ctx.result is not None
    return codes.to_iso(ctx.result.response_code) or codes.SYSTEM_MALFUNCTION


def approved_unrecorded(ctx: AuthContext) -> bool:
    """The issuer approved, and the approval is not in the store: it must be reversed."""
    return (
        ctx.tx is not None
        and not ctx.recorded
        and ctx.result is not None
        and issuer_code(ctx) == codes.APPROVED
    )
