"""The authorization, stage by stage: ``default_stages`` is the whole story, in order.

Each stage is a small callable class whose ``name`` (the class name in lower case) is what the
metrics (``payswitch_stage_seconds{stage}``) and the logs call it. A stage ends the pipeline
with ``ctx.end(code)``; ``Pipeline.finish`` then records the final transition
(``switch.pipeline.outcome.decide``, the one place it is decided) with the answer. Adding a
stage (risk, say) means writing one class and inserting it in ``default_stages``.

    admit -> validate -> verify -> claim -> route -> decrypt -> receive -> intent -> risk
    -> forward -> standin -> record

Store writes: three per authorization. "claim" writes the key; "receive" only prepares, and
"intent" writes the vault entry, the RECEIVED transaction (duplicate-transmission check), its
attachment to the key and RECEIVED -> PENDING in one store call
(``Store.receive_with_intent``: one SQLite commit); "record" decides the final transition,
which ``Pipeline.finish`` writes with the key's answer (``Store.record_with_answer``).
HSM jobs: two ("verify", "decrypt"), one more per failover with a PIN, and the answer's
response MAC (``Pipeline.finish``, ``switch.cardsec.answers``).

Why this order:

- Admission comes first and runs once (``switch.core.admission``): the terminal is listed,
  its client certificate names it, it is not revoked, it is within its rate, and the request
  names its own merchant. A refused request touches nothing.
- The MAC is verified before the claim, so a forged or altered request is refused
  (UNAUTHENTICATED) before any state changes, and cannot squat an idempotency key.
- The claim comes before decryption, as DESIGN orders: its fingerprint is a keyed digest of the
  MAC'd content, where the card is its ciphertext and KSN, so it needs no PAN (and holds none,
  not even hashed), and a replayed retry never decrypts the card again. Resent bytes match;
  the same key with any other content (amount, card, PIN, chip data, or even a re-encryption
  under a new KSN) does not, and is refused. Card data that is authentic but unusable (does not
  decrypt, fails Luhn, a PIN block that is not format 4) is found after the claim: nothing is
  recorded yet, so the key is released and the terminal gets INVALID_ARGUMENT as before.
- Routing needs the card's scheme, which needs the PAN, and the PIN block must be translated
  to the zone PIN key of the chosen acquirer. So "route" runs before the card is opened and
  gives the merchant's acquirers for every scheme it takes (a table, no card data); the
  "decrypt" HSM job looks the card's scheme up in it and translates the PIN block straight to
  the first acquirer's zone, in the same job. Failover to a later acquirer translates again
  (``Route.reroute``).
- The vault entry is written with (and, step by step, before) the transaction, so every stored
  ``card_token`` can be turned back into its PAN by settlement.
- A merchant that does not accept the card's scheme is declined (12) once the transaction is
  recorded, as RECEIVED -> DECLINED: a duplicate transmission still answers 94 first.
- "risk" runs after "intent", before "forward": it needs the card token ("decrypt"), and
  after the intent its decision has a stored transaction to be kept with (a risk decline is
  PENDING -> DECLINED, its score and reasons beside it), while a duplicate transmission (94)
  or a replayed KSN is refused by "intent" before it can count towards any velocity. Nothing
  has left the switch yet, so a decline needs no reversal. Its store observation (read the
  card's history, add this request) rides in the intent's write, after the device and STAN
  guards let the request through (``Store.receive_with_intent`` ``risk=``): one write fewer,
  and the stage itself only runs the rules; its decision is written beside what follows and
  awaited before the answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import ClassVar, Protocol

from hsm.dukpt import Ksn
from hsm.errors import HsmError
from payswitch import codes, fx
from payswitch.emvdata import arqc_input
from payswitch.logs import get as get_logger
from payswitch.seclink import mac_fields
from payswitch.v1 import network_pb2
from switch.cardsec.protector import CardDataRejected, RequestRejected
from switch.core.dcc import DccRefused
from switch.core.idempotency import Replay
from switch.core.sequences import network_stan_of, rrn_of
from switch.domain.devices import DeviceRefused, DeviceUse
from switch.domain.standin import StandInCard
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
from switch.pipeline.context import AuthContext, Delivery
from switch.pipeline.outcome import UNKNOWN_MESSAGE, decide
from switch.risk.engine import RiskEngine
from switch.risk.facts import Facts
from switch.routing.connectors import OutcomeUnknown, Refused
from switch.routing.standin import Decision
from switch.services import Services
from switch.wire.convert import money, scheme_to_proto
from switch.wire.errors import InvalidArgument, Unauthenticated
from switch.wire.validation import authorize as validate_authorize

# Below this much remaining budget a forward cannot usefully reach the issuer.
MIN_FORWARD_S = 0.02

_log = get_logger("switch.authorize")


class Stage(Protocol):
    @property
    def name(self) -> str: ...

    async def __call__(self, ctx: AuthContext) -> None: ...


class Named:
    """A stage's name is its class name in lower case: one word for code, metrics and logs."""

    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = cls.__name__.lower()


class Admit(Named):
    """The terminal may send this request (``switch.core.admission``: listed, its certificate,
    not revoked, within its rate), for its own merchant."""

    def __init__(self, svc: Services) -> None:
        self._gate = svc.gate

    async def __call__(self, ctx: AuthContext) -> None:
        r = ctx.request
        # The terminal's token is taken here only when its certificate named it (mTLS);
        # without TLS, once the MAC verified (Verify).
        ctx.identity = self._gate.admit(r.terminal_id, ctx.peer, rate=self._gate.rate_at_admission)
        ctx.identity.check_merchant(r.merchant_id)


class Validate(Named):
    """Every field of the request, before anything is touched (INVALID_ARGUMENT naming it);
    ``local_time`` within the configured window of the switch's clock."""

    def __init__(self, window_s: float | None = None) -> None:
        self._window_s = window_s

    async def __call__(self, ctx: AuthContext) -> None:
        now = time.time() if self._window_s is not None else None
        ctx.local_time = validate_authorize(ctx.request, now, self._window_s)


class Verify(Named):
    """The request MAC, checked in the HSM; the idempotency fingerprint in the same job. Without
    TLS the terminal's rate token is taken here, once the request is known to be its own."""

    def __init__(self, svc: Services) -> None:
        self._protector = svc.protector
        self._gate = svc.gate

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
        self._gate.take_verified(r.terminal_id)


class Claim(Named):
    """The idempotency key: this request holds it, or an earlier answer is replayed."""

    def __init__(self, svc: Services) -> None:
        self._guard = svc.guard

    async def __call__(self, ctx: AuthContext) -> None:
        if not ctx.key:
            return
        r = ctx.request
        claimed = await self._guard.claim(
            r.terminal_id, ctx.key, "authorize", ctx.fingerprint, ctx.budget
        )
        if isinstance(claimed, Replay):
            ctx.replay = claimed
            ctx.done = True
        else:
            ctx.hold = claimed


class Route(Named):
    """The merchant's acquirers for each scheme it takes, in its order of preference (circuits
    that admit a request first); and, on failover, the PIN block and the stored intent
    pointed at the next acquirer (``reroute``)."""

    def __init__(self, svc: Services) -> None:
        self._svc = svc

    async def __call__(self, ctx: AuthContext) -> None:
        assert ctx.identity is not None
        ctx.routes = self._svc.router.routes(ctx.identity.merchant)

    async def reroute(self, ctx: AuthContext, acquirer_id: str) -> None:
        """Point the PIN block and the stored intent at ``acquirer_id`` before sending: the
        PIN translated again from the request's DUKPT block, the transaction's acquirer moved
        by compare-and-set (still PENDING), so that recovery, reversal and follow-ups address
        the acquirer actually used."""
        r, card, tx = ctx.request, ctx.card, ctx.tx
        assert card is not None and tx is not None
        if r.pin_block:
            try:
                block = await self._svc.protector.translate_pin(
                    r.encrypted_card.ksn, r.pin_block, card.pan, acquirer_id
                )
            except CardDataRejected as exc:
                raise InvalidArgument(exc.field, str(exc)) from None
            ctx.card = dataclasses.replace(card, pin_block=block)
        ctx.tx = await self._svc.store.compare_and_set(
            tx.id,
            Expect(state=TxState.PENDING, acquirer_id=tx.acquirer_id),
            Changes(acquirer_id=acquirer_id, updated_at=time.time()),
        )
        _log.info("failover", tx=tx.id, from_acquirer=tx.acquirer_id, to_acquirer=acquirer_id)


class Decrypt(Named):
    """One HSM job: decrypt and check the card data, take the card scheme's route, translate
    the PIN block to the first acquirer's zone, tokenize, seal the PAN for the vault."""

    def __init__(self, svc: Services) -> None:
        self._protector = svc.protector
        self._dcc = svc.dcc

    async def __call__(self, ctx: AuthContext) -> None:
        r = ctx.request
        try:
            card = await self._protector.open_card(
                r.encrypted_card.ksn, r.encrypted_card.ciphertext, r.pin_block, ctx.routes
            )
        except CardDataRejected as exc:
            raise InvalidArgument(exc.field, str(exc)) from None
        if r.dcc_currency:  # the DCC choice, re-quoted for this card (switch.core.dcc)
            if self._dcc is None:
                raise InvalidArgument("dcc_currency", "this switch offers no DCC")
            try:
                ctx.dcc = self._dcc.check(
                    card.pan, r.amount.minor_units, r.amount.currency, r.dcc_currency, r.dcc_rate
                )
            except DccRefused as exc:
                raise InvalidArgument(exc.field, str(exc)) from None
        ctx.card = card
        ctx.card_token = card.token
        ctx.masked_pan = card.masked_pan
        ctx.bin = card.bin
        ctx.scheme = card.scheme
        ctx.acquirer_ids = list(card.acquirer_ids)
        ctx.vault = VaultWrite(card.token, card.vault_blob, card.vault_version)


class Receive(Named):
    """Build the transaction as RECEIVED, with its RRN (written by "intent")."""

    def __init__(self, svc: Services) -> None:
        self._svc = svc

    async def __call__(self, ctx: AuthContext) -> None:
        r = ctx.request
        assert ctx.local_time is not None and ctx.identity is not None and ctx.scheme is not None
        n = await self._svc.rrns.next()
        now = time.time()
        ctx.received = Transaction(
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
        if ctx.dcc is not None:  # a DCC sale is authorized and cleared in the card's currency
            d = ctx.dcc
            ctx.received = ctx.received.copy(
                amount_minor=d.billing_minor,
                currency=d.billing_currency,
                dcc_local_minor=d.amount_minor,
                dcc_local_currency=d.currency,
                fx_rate=fx.format_rate(d.rate),
                rate_table=d.table_version,
                dcc_markup_bps=d.markup_bps,
            )


class Intent(Named):
    """The device's counter, vault entry, RECEIVED transaction, key attachment and RECEIVED
    -> PENDING with the chosen acquirer in one store write, durable before anything leaves the
    switch. A KSN counter the device used already (a replay, even re-MACed with a new STAN) or
    another terminal's device is refused INVALID_ARGUMENT naming ``encrypted_card.ksn``,
    nothing recorded (``switch.domain.devices``); a taken (terminal, local date, STAN) answers
    94; no route leaves the row RECEIVED and answers 12 (recorded RECEIVED -> DECLINED)."""

    def __init__(self, svc: Services) -> None:
        self._store = svc.store
        self._registered_only = svc.config.device_binding == "registered"
        self._svc = svc  # its risk engine is opened after the stages are built

    async def __call__(self, ctx: AuthContext) -> None:
        r = ctx.request
        assert ctx.received is not None
        ksn = Ksn.from_bytes(r.encrypted_card.ksn)
        device = DeviceUse(
            ksn.ikid.hex(),
            r.terminal_id,
            ksn.counter,
            ctx.received.local_date,
            r.stan,
            registered_only=self._registered_only,
        )
        now = time.time()
        seen = None
        engine = self._svc.risk
        if engine is not None:
            facts = risk_facts(ctx, ctx.received, engine, now)
            seen = engine.observing(facts)
            ctx.risk_seen = (facts, seen)
        try:
            ctx.tx = await self._store.receive_with_intent(
                ctx.received,
                vault=ctx.vault,
                attach=(r.terminal_id, ctx.key) if ctx.hold is not None else None,
                acquirer_id=ctx.acquirer_ids[0] if ctx.acquirer_ids else "",
                now=now,
                device=device,
                risk=seen,
            )
        except DeviceRefused as exc:
            _log.warning(
                "device_refused",
                terminal=r.terminal_id,
                ksn=ksn.hex(),
                reason=type(exc).__name__,
            )
            raise InvalidArgument(exc.field, str(exc)) from None
        except DuplicateTransmission:
            ctx.end(codes.DUPLICATE_TRANSMISSION, "duplicate transmission")
            return
        except ReceivedOnly as exc:
            ctx.tx = exc.tx  # inserted, not moved on: finish settles it (RECEIVED -> DECLINED)
            raise
        if not ctx.acquirer_ids:
            assert ctx.scheme is not None
            ctx.end(codes.INVALID_TRANSACTION, f"merchant does not accept {ctx.scheme.value}")


def risk_facts(ctx: AuthContext, tx: Transaction, engine: RiskEngine, now: float) -> Facts:
    """The risk facts of the request (typed signals, the card by its token: never a PAN)."""
    r = ctx.request
    assert ctx.local_time is not None
    return Facts(
        card_token=tx.card_token,
        bin=tx.bin,
        terminal_id=r.terminal_id,
        merchant_id=r.merchant_id,
        address=ctx.address,
        amount=r.amount.minor_units,
        currency=r.amount.currency,
        mcc=tx.mcc,
        country=engine.country_of(r.terminal_id),
        entry_mode=int(r.entry_mode),
        has_pin=bool(r.pin_block),
        local_hour=ctx.local_time.hour,
        now=now,
        small=engine.is_small(r.amount.minor_units, r.amount.currency),
    )


class Risk(Named):
    """Signals and rules on the stored intent (``switch.risk``). The store observation (the
    card's, terminal's, merchant's history, this request added) was made by the intent's own
    write, within ``[risk] slice_ms`` or the fallback decides: this stage waits for nothing.
    A decline (59, a limit's 61/65, 65 with ``pin_required`` for a step-up without PIN, the
    fallback's code) ends the pipeline before anything leaves; every decision is kept with
    the transaction, written beside the rest of the request and awaited before the answer
    (``Pipeline.finish``). No PAN: the card token."""

    def __init__(self, svc: Services) -> None:
        self._svc = svc

    async def __call__(self, ctx: AuthContext) -> None:
        engine = self._svc.risk
        if engine is None or ctx.tx is None or ctx.risk_seen is None:
            return
        tx = ctx.tx
        facts, seen = ctx.risk_seen
        decision = engine.decide(facts, seen)
        ctx.risk, ctx.risk_facts = decision, facts
        ctx.risk_kept = asyncio.get_running_loop().create_task(engine.keep(tx.id, decision, facts))
        if decision.action == "approve" and not decision.reasons:
            return  # a clean approval: its decision is kept and counted, no line of its own
        _log.info(
            "risk",
            tx=tx.id,
            action=decision.action,
            score=decision.score,
            reasons=list(decision.reasons),
            rules=decision.version,
            shadow_action=decision.shadow_action,
        )
        if decision.code:
            ctx.end(decision.code, decision.message or "declined by risk rules")


class Forward(Named):
    """Send to the first candidate acquirer that takes the request, with the remaining budget.

    Failover: a candidate that refuses before sending (``Refused``: circuit open, or no
    connection within the connect bound) is skipped and the next one tried; the request
    certainly did not leave. Before a request goes to another acquirer than the intent named
    (once that acquirer's circuit admitted it and its connection is up: the connector's
    ``prepare`` step), "route" points the PIN block and the stored intent at it
    (``Route.reroute``). Once a request may have left (any other error), the outcome is
    unknown: reversal, never failover. Every candidate refusing leaves ``Delivery.NO_ROUTE``:
    the "standin" stage answers.
    """

    def __init__(self, svc: Services, route: Route) -> None:
        self._svc = svc
        self._route = route

    async def __call__(self, ctx: AuthContext) -> None:
        # The wait for the acquirers, which the admission limit leaves out of the switch's
        # own time (switch/core/concurrency.py).
        t0 = time.perf_counter()
        try:
            await self._forward(ctx)
        finally:
            ctx.downstream_s += time.perf_counter() - t0

    async def _forward(self, ctx: AuthContext) -> None:
        assert ctx.tx is not None
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
            ctx.delivery = Delivery.SENDING
            try:
                if acquirer_id == ctx.tx.acquirer_id:
                    ctx.result = await conn.authorize(self._message(ctx), ctx.budget.remaining())
                else:

                    async def prepare(
                        acquirer_id: str = acquirer_id,
                    ) -> network_pb2.NetworkAuthorization:
                        await self._route.reroute(ctx, acquirer_id)
                        return self._message(ctx)

                    ctx.result = await conn.authorize(
                        self._message(ctx), ctx.budget.remaining(), prepare
                    )
            except Refused as exc:
                ctx.delivery = Delivery.NOT_SENT
                _log.info("failover_skip", tx=ctx.tx.id, acquirer=acquirer_id, reason=exc.reason)
                continue
            except OutcomeUnknown as exc:
                ctx.delivery = Delivery.UNKNOWN
                ctx.message = str(exc)
                return
            ctx.delivery = Delivery.ANSWERED
            return
        ctx.delivery = Delivery.NO_ROUTE

    @staticmethod
    def _message(ctx: AuthContext) -> network_pb2.NetworkAuthorization:
        r, tx, card = ctx.request, ctx.tx, ctx.card
        assert tx is not None and card is not None and ctx.scheme is not None
        msg = network_pb2.NetworkAuthorization(
            rrn=tx.rrn,
            stan=network_stan_of(int(tx.rrn)),
            acquirer_id=tx.acquirer_id,
            merchant_id=r.merchant_id,
            terminal_id=r.terminal_id,
            merchant_category_code=tx.mcc,
            amount=r.amount if ctx.dcc is None else money(tx.amount_minor, tx.currency),
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


class StandIn(Named):
    """No acquirer could take the request: the stand-in rules decide (approve within them,
    STOOD_IN with the switch's auth code and advised to the issuer later, or decline 91 / the
    rule's code), after checking the card as its issuer would (one HSM job with the keys and
    file the issuer shares for stand-in: negative file, expiry, ARQC and its counter, PIN,
    CVV2; the request's own DUKPT PIN block). Without stand-in configured, 91; an HSM failure,
    96."""

    def __init__(self, svc: Services) -> None:
        self._svc = svc

    async def __call__(self, ctx: AuthContext) -> None:
        if ctx.delivery is not Delivery.NO_ROUTE:
            return
        assert ctx.card is not None and ctx.tx is not None
        standin = self._svc.standin
        if standin is None:
            decision = Decision(codes.ISSUER_UNAVAILABLE, "disabled")
        else:
            try:
                decision = await standin.decide(
                    pan=ctx.card.pan,
                    card_token=ctx.tx.card_token,
                    mcc=ctx.tx.mcc,
                    amount=ctx.tx.amount_minor,
                    currency=ctx.tx.currency,
                    card=self._card(ctx),
                )
            except HsmError as exc:
                _log.error("standin_hsm_failed", tx=ctx.tx.id, error=type(exc).__name__)
                decision = Decision(codes.SYSTEM_MALFUNCTION, "hsm")
        _log.info("standin", tx=ctx.tx.id, code=decision.code, reason=decision.reason)
        ctx.standin = decision
        if decision.approved:
            ctx.end(codes.APPROVED, "approved in stand-in: no route to the issuer")
        elif decision.reason == "disabled":
            ctx.end(decision.code, "no route to the issuer")
        else:
            ctx.end(decision.code, f"no route to the issuer; stand-in declined ({decision.reason})")

    @staticmethod
    def _card(ctx: AuthContext) -> StandInCard:
        r, card = ctx.request, ctx.card
        assert card is not None
        has_emv = r.HasField("emv")
        return StandInCard(
            ksn=bytes(r.encrypted_card.ksn),
            pan=card.pan,
            expiry=card.expiry,
            cvv2=card.cvv2,
            pin_block=bytes(r.pin_block),
            emv_present=has_emv,
            arqc=(arqc_input(r.emv, r.amount.minor_units, r.amount.currency) if has_emv else None),
        )


class Record(Named):
    """Decide the final transition (``switch.pipeline.outcome.decide``) and the answer's code:
    the issuer's, or 91 when it did not answer in time (then reversed). ``Pipeline.finish``
    writes it with the answer, then queues the reversal."""

    async def __call__(self, ctx: AuthContext) -> None:
        ctx.outcome = decide(ctx, time.time())
        if ctx.outcome is None:
            return
        if ctx.outcome.to_state is TxState.UNKNOWN:
            ctx.end(codes.ISSUER_UNAVAILABLE, UNKNOWN_MESSAGE)
        else:
            ctx.end(ctx.outcome.changes.response_code or codes.SYSTEM_MALFUNCTION)


def default_stages(svc: Services) -> list[Stage]:
    """The authorization, in order (the module docstring says why this order)."""
    route = Route(svc)
    return [
        Admit(svc),
        Validate(svc.config.local_time_window_s),
        Verify(svc),
        Claim(svc),
        route,
        Decrypt(svc),
        Receive(svc),
        Intent(svc),
        Risk(svc),
        Forward(svc, route),
        StandIn(svc),
        Record(),
    ]
