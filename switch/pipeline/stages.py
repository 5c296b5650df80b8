"""The authorization stages, in order. Each is a small callable class with a ``name``; a stage
ends the pipeline with ``ctx.end(code)``. Adding a stage (risk, stand-in) means writing one
class and inserting it in ``default_stages``.

Order: validate -> authenticate terminal -> verify request MAC (+ fingerprint) -> claim
idempotency key -> decrypt card data (+ route, PIN translate, tokenize, vault seal: one HSM job)
-> vault -> receive -> route -> write intent -> forward (with failover) -> stand-in -> record.
The answer is built by ``Pipeline.finish``.

Store writes: three per authorization. "claim" writes the key; "vault", "receive" and "route"
only prepare, and "intent" writes the vault entry, the RECEIVED transaction (duplicate-
transmission check), its attachment to the key and RECEIVED -> PENDING in one store call
(``Store.receive_with_intent``: one SQLite commit); "record" only decides the final transition,
which ``Pipeline.finish`` writes with the key's answer (``Store.record_with_answer``).

Why this order:

- The MAC is verified before the claim, so a forged or altered request is refused
  (UNAUTHENTICATED) before any state changes, and cannot squat an idempotency key.
- The claim comes before decryption, as DESIGN orders: its fingerprint is a keyed digest of the
  MAC'd content, where the card is its ciphertext and KSN, so it needs no PAN (and holds none,
  not even hashed), and a replayed retry never decrypts the card again. Resent bytes match;
  the same key with any other content (amount, card, PIN, chip data, or even a re-encryption
  under a new KSN) does not, and is refused. Card data that is authentic but unusable (does not
  decrypt, fails Luhn, a PIN block that is not format 4) is found after the claim: nothing is
  recorded yet, so the key is released and the terminal gets INVALID_ARGUMENT as before.
- Routing needs the scheme, which needs the PAN, and the PIN block must be translated to the
  zone PIN key of the chosen acquirer: the decrypt job computes the route from the card's scheme
  and translates straight to ``switch/zpk.<first acquirer>`` in the same job. (Failover to a
  later acquirer, when it comes, must translate again from the request's DUKPT block.)
- The vault entry is written with (and, step by step, before) the transaction, so every stored
  ``card_token`` can be turned back into its PAN by settlement.
- A merchant that does not accept the card's scheme is declined (12) once the transaction is
  recorded, as RECEIVED -> DECLINED: a duplicate transmission still answers 94 first.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Protocol

from payswitch import codes
from payswitch.logs import get as get_logger
from payswitch.seclink import mac_fields
from payswitch.v1 import network_pb2
from switch.cardsec.protector import CardDataRejected, RequestRejected
from switch.core.sequences import network_stan_of, rrn_of
from switch.domain.transactions import (
    Changes,
    DuplicateTransmission,
    Expect,
    ReceivedOnly,
    Transaction,
    TxState,
    TxType,
)
from switch.domain.vault import VaultWrite
from switch.pipeline.context import AuthContext, Outcome
from switch.routing.connectors import OutcomeUnknown, Refused
from switch.routing.standin import Decision
from switch.services import Services
from switch.wire.convert import scheme_to_proto
from switch.wire.errors import InvalidArgument, Unauthenticated
from switch.wire.validation import authorize as validate_authorize

# Below this much remaining budget a forward cannot usefully reach the issuer.
MIN_FORWARD_S = 0.02

_log = get_logger("switch.authorize")


class Stage(Protocol):
    name: str

    async def __call__(self, ctx: AuthContext) -> None: ...


class Validate:
    name = "validate"

    async def __call__(self, ctx: AuthContext) -> None:
        ctx.local_time = validate_authorize(ctx.request)


class AuthenticateTerminal:
    name = "authenticate"

    def __init__(self, svc: Services) -> None:
        self._registry = svc.registry

    async def __call__(self, ctx: AuthContext) -> None:
        ctx.identity = self._registry.authenticate(ctx.request.terminal_id, ctx.request.merchant_id)


class VerifyRequest:
    """The request MAC, checked in the HSM; the idempotency fingerprint in the same job."""

    name = "verify"

    def __init__(self, svc: Services) -> None:
        self._protector = svc.protector

    async def __call__(self, ctx: AuthContext) -> None:
        r = ctx.request
        try:
            ctx.fingerprint = await self._protector.verify_request(
                mac_fields(r), r.mac, keyed=bool(ctx.key)
            )
        except RequestRejected:
            _log.warning(
                "request_mac_failed",
                terminal=r.terminal_id,
                stan=r.stan,
                ksn=bytes(r.encrypted_card.ksn).hex().upper(),
            )
            raise Unauthenticated("mac: the request MAC does not verify") from None


class ClaimIdempotencyKey:
    name = "claim"

    def __init__(self, svc: Services) -> None:
        self._svc = svc

    async def __call__(self, ctx: AuthContext) -> None:
        if not ctx.key:
            return
        r = ctx.request
        replay = await self._svc.guard.claim(
            r.terminal_id, ctx.key, "authorize", ctx.fingerprint, ctx.budget
        )
        if replay is not None:
            ctx.replay = replay
            ctx.done = True
        else:
            ctx.claimed = True


class DecryptCard:
    """Open the card data in the HSM: decrypt, check, route, translate PIN, tokenize, seal."""

    name = "decrypt"

    def __init__(self, svc: Services) -> None:
        self._protector = svc.protector
        self._router = svc.router

    async def __call__(self, ctx: AuthContext) -> None:
        r = ctx.request
        merchant = ctx.identity.merchant
        router = self._router
        try:
            card = await self._protector.open_card(
                r.encrypted_card.ksn,
                r.encrypted_card.ciphertext,
                r.pin_block,
                lambda scheme: tuple(router.candidates(merchant, scheme)),
            )
        except CardDataRejected as exc:
            raise InvalidArgument(exc.field, str(exc)) from None
        ctx.card = card
        ctx.card_token = card.token
        ctx.masked_pan = card.masked_pan
        ctx.bin = card.bin
        ctx.scheme = card.scheme
        ctx.acquirer_ids = list(card.acquirer_ids)


class VaultCard:
    """The PAN, sealed by the HSM, to keep by token so settlement can recover it (written by
    "intent", in the same store write as the transaction)."""

    name = "vault"

    async def __call__(self, ctx: AuthContext) -> None:
        card = ctx.card
        ctx.vault = VaultWrite(card.token, card.vault_blob, card.vault_version)


class ReceiveTransaction:
    """Build the transaction as RECEIVED, with its RRN (written by "intent")."""

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
        ctx.received = tx


class Route:
    """The acquirers for the card; none (the merchant does not take the scheme) is declined
    12 by "intent" once the transaction is recorded."""

    name = "route"

    def __init__(self, svc: Services) -> None:
        self._router = svc.router

    async def __call__(self, ctx: AuthContext) -> None:
        if ctx.card is None:  # the decrypt stage routes already (it translates the PIN for it)
            ctx.acquirer_ids = self._router.candidates(ctx.identity.merchant, ctx.scheme)


class WriteIntent:
    """Vault entry, RECEIVED transaction, key attachment and RECEIVED -> PENDING with the
    chosen acquirer in one store write, durable before anything leaves the switch. A taken
    (terminal, local date, STAN) answers 94; no route leaves the row RECEIVED and answers 12
    (``Pipeline.finish`` records RECEIVED -> DECLINED)."""

    name = "intent"

    def __init__(self, svc: Services) -> None:
        self._store = svc.store

    async def __call__(self, ctx: AuthContext) -> None:
        r = ctx.request
        try:
            ctx.tx = await self._store.receive_with_intent(
                ctx.received,
                vault=ctx.vault,
                attach=(r.terminal_id, ctx.key) if ctx.claimed else None,
                acquirer_id=ctx.acquirer_ids[0] if ctx.acquirer_ids else "",
                now=time.time(),
            )
        except DuplicateTransmission:
            ctx.end(codes.DUPLICATE_TRANSMISSION, "duplicate transmission")
            return
        except ReceivedOnly as exc:
            ctx.tx = exc.tx  # inserted, not moved on: finish settles it (RECEIVED -> DECLINED)
            raise
        if not ctx.acquirer_ids:
            ctx.end(codes.INVALID_TRANSACTION, f"merchant does not accept {ctx.scheme.value}")


class Forward:
    """Send to the first candidate acquirer that takes the request, with the remaining budget.

    Failover: a candidate that refuses before sending (``Refused``: circuit open, or no
    connection within the connect bound) is skipped and the next one tried; the request
    certainly did not leave. Before a request goes to another acquirer than the intent named
    (once that acquirer's circuit admitted it and its connection is up: the connector's
    ``prepare`` step), the PIN block is translated to its zone key and the transaction's
    ``acquirer_id`` moved to it (compare-and-set, still PENDING), so that recovery, reversal
    and follow-ups address the acquirer actually used. Once a request may have left (any other
    error), the outcome is unknown: reversal, never failover. Every candidate refusing sets
    ``ctx.no_route``: the "standin" stage answers.
    """

    name = "forward"

    def __init__(self, svc: Services) -> None:
        self._svc = svc

    async def __call__(self, ctx: AuthContext) -> None:
        for acquirer_id in ctx.acquirer_ids:
            remaining = ctx.budget.remaining()
            if remaining < MIN_FORWARD_S:
                ctx.end(codes.ISSUER_UNAVAILABLE, "no time left in the budget")
                return
            breakers = self._svc.breakers
            if breakers is not None and not breakers.available(acquirer_id):
                _log.info("failover_skip", tx=ctx.tx.id, acquirer=acquirer_id, reason="open")
                continue
            conn = self._svc.connectors.get(acquirer_id)
            # Until the connector says it did not send, the request may have left: any
            # unexpected error from here on settles as UNKNOWN and is reversed.
            ctx.forwarded = True
            try:
                if acquirer_id == ctx.tx.acquirer_id:
                    ctx.result = await conn.authorize(self._message(ctx), ctx.budget.remaining())
                else:

                    async def prepare(acquirer_id: str = acquirer_id):
                        await self._switch_to(ctx, acquirer_id)
                        return self._message(ctx)

                    ctx.result = await conn.authorize(
                        self._message(ctx), ctx.budget.remaining(), prepare
                    )
            except Refused as exc:
                ctx.forwarded = False
                _log.info("failover_skip", tx=ctx.tx.id, acquirer=acquirer_id, reason=exc.reason)
                continue
            except OutcomeUnknown as exc:
                ctx.unknown = True
                ctx.message = str(exc)
            return
        ctx.no_route = True

    async def _switch_to(self, ctx: AuthContext, acquirer_id: str) -> None:
        """Point the PIN block and the stored intent at ``acquirer_id`` before sending."""
        r, card = ctx.request, ctx.card
        if r.pin_block:
            try:
                block = await self._svc.protector.translate_pin(
                    r.encrypted_card.ksn, r.pin_block, card.pan, acquirer_id
                )
            except CardDataRejected as exc:
                raise InvalidArgument(exc.field, str(exc)) from None
            ctx.card = dataclasses.replace(card, pin_block=block)
        tx = ctx.tx
        ctx.tx = await self._svc.store.compare_and_set(
            tx.id,
            Expect(state=TxState.PENDING, acquirer_id=tx.acquirer_id),
            Changes(acquirer_id=acquirer_id, updated_at=time.time()),
        )
        _log.info("failover", tx=tx.id, from_acquirer=tx.acquirer_id, to_acquirer=acquirer_id)

    @staticmethod
    def _message(ctx: AuthContext) -> network_pb2.NetworkAuthorization:
        r, tx, card = ctx.request, ctx.tx, ctx.card
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
            pan=card.pan,
            expiry=card.expiry,
            cvv2=card.cvv2,
            pin_block=card.pin_block,
            transmission_time_ms=int(time.time() * 1000),
        )
        if r.HasField("emv"):
            msg.emv.CopyFrom(r.emv)
        return msg


class StandInStage:
    """No acquirer could take the request: approve in stand-in within the rules (STOOD_IN,
    the switch's auth code, advised to the issuer later) or decline 91 / the rule's code.
    Without stand-in configured, 91."""

    name = "standin"

    def __init__(self, svc: Services) -> None:
        self._svc = svc

    async def __call__(self, ctx: AuthContext) -> None:
        if not ctx.no_route:
            return
        now = time.time()
        standin = self._svc.standin
        if standin is None:
            decision = Decision(codes.ISSUER_UNAVAILABLE, "disabled")
        else:
            decision = await standin.decide(
                pan=ctx.card.pan,
                card_token=ctx.tx.card_token,
                mcc=ctx.tx.mcc,
                amount=ctx.tx.amount_minor,
                currency=ctx.tx.currency,
            )
        _log.info("standin", tx=ctx.tx.id, code=decision.code, reason=decision.reason)
        if decision.approved:
            ctx.stood_in = True
            ctx.outcome = Outcome(
                TxState.STOOD_IN,
                Changes(response_code=codes.APPROVED, auth_code=decision.auth_code, updated_at=now),
                advise=True,
            )
            ctx.end(codes.APPROVED, "approved in stand-in: no route to the issuer")
            return
        ctx.outcome = Outcome(
            TxState.DECLINED, Changes(response_code=decision.code, updated_at=now)
        )
        message = (
            "no route to the issuer"
            if decision.reason == "disabled"
            else (f"no route to the issuer; stand-in declined ({decision.reason})")
        )
        ctx.end(decision.code, message)


class Record:
    """Decide PENDING -> APPROVED | DECLINED | UNKNOWN; ``Pipeline.finish`` writes it with the
    answer in one store write, then queues an unknown outcome for reversal."""

    name = "record"

    async def __call__(self, ctx: AuthContext) -> None:
        now = time.time()
        if ctx.unknown:
            ctx.outcome = Outcome(
                TxState.UNKNOWN,
                Changes(response_code=codes.ISSUER_UNAVAILABLE, updated_at=now),
                reverse=True,
            )
            ctx.end(codes.ISSUER_UNAVAILABLE, "issuer did not answer in time; reversed")
            return
        iso = codes.to_iso(ctx.result.response_code) or codes.SYSTEM_MALFUNCTION
        approved = iso == codes.APPROVED
        ctx.outcome = Outcome(
            TxState.APPROVED if approved else TxState.DECLINED,
            Changes(
                response_code=iso,
                auth_code=ctx.result.auth_code if approved else "",
                updated_at=now,
            ),
        )
        ctx.end(iso)


def default_stages(svc: Services) -> list[Stage]:
    return [
        Validate(),
        AuthenticateTerminal(svc),
        VerifyRequest(svc),
        ClaimIdempotencyKey(svc),
        DecryptCard(svc),
        VaultCard(),
        ReceiveTransaction(svc),
        Route(svc),
        WriteIntent(svc),
        Forward(svc),
        StandInStage(svc),
        Record(),
    ]
