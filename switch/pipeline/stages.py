"""The authorization stages, in order. Each is a small callable class with a ``name``; a stage
ends the pipeline with ``ctx.end(code)``. Adding a stage (HSM decrypt, risk, stand-in) means
writing one class and inserting it in ``default_stages``.

Order: validate -> authenticate terminal -> tokenize -> claim idempotency key -> receive
(insert, duplicate-transmission check) -> route -> write intent -> forward -> record.
Tokenize runs before the claim because the idempotency fingerprint is keyed on the card token:
no PAN reaches the store, not even hashed. The answer is built by ``Pipeline.finish``.
"""

from __future__ import annotations

import time
from typing import Protocol

from payswitch import cards, codes
from payswitch.v1 import network_pb2
from switch.cardsec import canonical
from switch.connectors import OutcomeUnknown
from switch.convert import scheme_to_proto
from switch.pipeline.context import AuthContext
from switch.pipeline.services import Services
from switch.sequences import network_stan_of, rrn_of
from switch.store.base import DuplicateTransmission, Transaction, TxState, TxType
from switch.validation import authorize as validate_authorize

# Below this much remaining budget a forward cannot usefully reach the issuer.
MIN_FORWARD_S = 0.02


class Stage(Protocol):
    name: str

    async def __call__(self, ctx: AuthContext) -> None: ...


class Validate:
    name = "validate"

    async def __call__(self, ctx: AuthContext) -> None:
        ctx.scheme, ctx.local_time = validate_authorize(ctx.request)


class AuthenticateTerminal:
    name = "authenticate"

    def __init__(self, svc: Services) -> None:
        self._registry = svc.registry

    async def __call__(self, ctx: AuthContext) -> None:
        ctx.identity = self._registry.authenticate(ctx.request.terminal_id, ctx.request.merchant_id)


class Tokenize:
    name = "tokenize"

    def __init__(self, svc: Services) -> None:
        self._protector = svc.protector

    async def __call__(self, ctx: AuthContext) -> None:
        pan = ctx.request.card.pan
        ctx.card_token = await self._protector.tokenize(pan)
        ctx.masked_pan = cards.mask_pan(pan)
        ctx.bin = cards.bin_of(pan)


class ClaimIdempotencyKey:
    name = "claim"

    def __init__(self, svc: Services) -> None:
        self._svc = svc

    async def __call__(self, ctx: AuthContext) -> None:
        if not ctx.key:
            return
        r = ctx.request
        ctx.fingerprint = await self._svc.protector.digest(
            canonical(
                "authorize",
                r.terminal_id,
                r.merchant_id,
                r.stan,
                r.local_time,
                r.amount.minor_units,
                r.amount.currency,
                r.entry_mode,
                ctx.card_token,
                r.card.expiry,
            )
        )
        replay = await self._svc.guard.claim(
            r.terminal_id, ctx.key, "authorize", ctx.fingerprint, ctx.budget
        )
        if replay is not None:
            ctx.replay = replay
            ctx.done = True
        else:
            ctx.claimed = True


class ReceiveTransaction:
    """Insert the transaction as RECEIVED; a taken (terminal, local date, STAN) answers 94."""

    name = "receive"

    def __init__(self, svc: Services) -> None:
        self._svc = svc

    async def __call__(self, ctx: AuthContext) -> None:
        r = ctx.request
        n = await self._svc.rrns.next()
        now = time.time()
        tx = Transaction(
            id=self._svc.new_id(),
            type=TxType.AUTHORIZATION,
            state=TxState.RECEIVED,
            terminal_id=r.terminal_id,
            merchant_id=r.merchant_id,
            stan=r.stan,
            local_date=ctx.local_time.date().isoformat(),
            local_time=r.local_time,
            amount_minor=r.amount.minor_units,
            currency=r.amount.currency,
            card_token=ctx.card_token,
            masked_pan=ctx.masked_pan,
            bin=ctx.bin,
            scheme=ctx.scheme.value,
            rrn=rrn_of(n),
            created_at=now,
            updated_at=now,
            deadline_at=ctx.budget.wall_deadline(),
            idempotency_key=ctx.key,
            entry_mode=str(r.entry_mode),
            mcc=ctx.identity.merchant.mcc,
        )
        try:
            await self._svc.store.insert_transaction(tx)
        except DuplicateTransmission:
            ctx.end(codes.DUPLICATE_TRANSMISSION, "duplicate transmission")
            return
        ctx.tx = tx
        if ctx.claimed:
            await self._svc.guard.attach(r.terminal_id, ctx.key, tx.id)


class Route:
    name = "route"

    def __init__(self, svc: Services) -> None:
        self._router = svc.router

    async def __call__(self, ctx: AuthContext) -> None:
        ctx.acquirer_ids = self._router.acquirers_for(ctx.identity.merchant, ctx.scheme)
        if not ctx.acquirer_ids:
            ctx.end(codes.INVALID_TRANSACTION, f"merchant does not accept {ctx.scheme.value}")


class WriteIntent:
    """RECEIVED -> PENDING, durable before anything leaves the switch."""

    name = "intent"

    def __init__(self, svc: Services) -> None:
        self._store = svc.store

    async def __call__(self, ctx: AuthContext) -> None:
        ctx.tx = await self._store.transition(
            ctx.tx.id,
            TxState.RECEIVED,
            TxState.PENDING,
            {"acquirer_id": ctx.acquirer_ids[0], "updated_at": time.time()},
        )


class Forward:
    """Send to the acquirer with the remaining budget; no answer means outcome unknown."""

    name = "forward"

    def __init__(self, svc: Services) -> None:
        self._svc = svc

    async def __call__(self, ctx: AuthContext) -> None:
        remaining = ctx.budget.remaining()
        if remaining < MIN_FORWARD_S:
            ctx.end(codes.ISSUER_UNAVAILABLE, "no time left in the budget")
            return
        r, tx = ctx.request, ctx.tx
        msg = network_pb2.NetworkAuthorization(
            rrn=tx.rrn,
            stan=network_stan_of(int(tx.rrn)),
            acquirer_id=tx.acquirer_id,
            merchant_id=r.merchant_id,
            terminal_id=r.terminal_id,
            merchant_category_code=tx.mcc,
            amount=r.amount,
            scheme=scheme_to_proto(ctx.scheme),
            entry_mode=r.entry_mode,
            pan=r.card.pan,
            expiry=r.card.expiry,
            transmission_time_ms=int(time.time() * 1000),
        )
        ctx.forwarded = True
        try:
            ctx.result = await self._svc.connectors.get(tx.acquirer_id).authorize(msg, remaining)
        except OutcomeUnknown as exc:
            ctx.unknown = True
            ctx.message = str(exc)


class Record:
    """PENDING -> APPROVED | DECLINED | UNKNOWN; an unknown outcome is queued for reversal."""

    name = "record"

    def __init__(self, svc: Services) -> None:
        self._svc = svc

    async def __call__(self, ctx: AuthContext) -> None:
        now = time.time()
        if ctx.unknown:
            ctx.tx = await self._svc.store.transition(
                ctx.tx.id,
                TxState.PENDING,
                TxState.UNKNOWN,
                {"response_code": codes.ISSUER_UNAVAILABLE, "updated_at": now},
            )
            ctx.recorded = True
            self._svc.reverser.schedule(ctx.tx.id)
            ctx.end(codes.ISSUER_UNAVAILABLE, "issuer did not answer in time; reversed")
            return
        iso = codes.to_iso(ctx.result.response_code) or codes.SYSTEM_MALFUNCTION
        approved = iso == codes.APPROVED
        ctx.tx = await self._svc.store.transition(
            ctx.tx.id,
            TxState.PENDING,
            TxState.APPROVED if approved else TxState.DECLINED,
            {
                "response_code": iso,
                "auth_code": ctx.result.auth_code if approved else "",
                "updated_at": now,
            },
        )
        ctx.recorded = True
        ctx.end(iso)


def default_stages(svc: Services) -> list[Stage]:
    return [
        Validate(),
        AuthenticateTerminal(svc),
        Tokenize(svc),
        ClaimIdempotencyKey(svc),
        ReceiveTransaction(svc),
        Route(svc),
        WriteIntent(svc),
        Forward(svc),
        Record(svc),
    ]
