"""The authorization pipeline: named stages run in order, then one place builds the answer.

``Pipeline.run`` never lets a stage's failure approve anything: a store or HSM failure answers
96 (fail closed), and an approval that could not be recorded is reversed. An API error (bad
input) before any transaction was recorded reaches the terminal as its gRPC status; if the
idempotency key was already claimed, the key is released first, so nothing remains.

Store writes: the final transition and the idempotency key's answer are one store call
(``Store.record_with_answer``, one SQLite commit), made here once the answer is built; with the
claim and the intent (see ``stages``) one authorization makes three durable writes.

Each stage's time goes to ``payswitch_stage_seconds{stage}``; the histogram children are
looked up once per stage list and metrics registry, so timing costs two clock reads and one
``observe`` per stage.

With tracing on (``payswitch.tracing``) the authorization is a span, ``authorize``, carrying the
answer's RRN, transaction id, terminal, STAN and response code (what ``payswitch-trace`` finds
it by), with one span per stage under it, named as the metrics name the stage, then ``answer``
(``finish``); off, each costs a flag test.
"""

from __future__ import annotations

import time

from prometheus_client import Histogram

from payswitch import codes, fx, tracing
from payswitch.logs import get as get_logger
from payswitch.v1 import terminal_pb2
from switch.cardsec.answers import seal
from switch.core import metrics
from switch.domain.errors import StoreError
from switch.domain.idempotency import Answer
from switch.domain.transactions import Transaction
from switch.pipeline.context import AuthContext, Outcome
from switch.pipeline.outcome import approved_unrecorded, decide
from switch.pipeline.stages import Stage, default_stages
from switch.recovery.advice import queue_advice
from switch.services import Services
from switch.wire.convert import code_to_proto, money, scheme_to_proto
from switch.wire.errors import ApiError

_log = get_logger("switch.authorize")


class Pipeline:
    def __init__(self, svc: Services, stages: list[Stage] | None = None) -> None:
        self.svc = svc
        self.stages = stages if stages is not None else default_stages(svc)
        self._timers: tuple[metrics.Metrics | None, list[Histogram]] = (None, [])

    def _stage_timers(self) -> list[Histogram]:
        """The stage histograms' children, in stage order, for the current registry."""
        m = metrics.get()
        if self._timers[0] is not m or len(self._timers[1]) != len(self.stages):
            self._timers = (m, [m.stage_seconds.labels(s.name) for s in self.stages])
        return self._timers[1]

    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    async def run(self, ctx: AuthContext) -> terminal_pb2.AuthorizeResponse:
        if not tracing.enabled():
            return await self._run(ctx)
        with tracing.child("authorize"):
            response = await self._run(ctx)
            r = ctx.request
            tracing.annotate(
                {
                    "payswitch.terminal_id": r.terminal_id,
                    "payswitch.stan": r.stan,
                    "payswitch.rrn": response.rrn,
                    "payswitch.tx_id": response.transaction_id,
                    "payswitch.response_code": codes.to_iso(response.response_code),
                }
            )
            return response

    async def _run(self, ctx: AuthContext) -> terminal_pb2.AuthorizeResponse:
        stage_name = ""
        timers = self._stage_timers()
        clock = time.perf_counter
        try:
            for stage, timer in zip(self.stages, timers, strict=True):
                stage_name = stage.name
                t0 = clock()
                try:
                    with tracing.child(stage_name):
                        await stage(ctx)
                finally:
                    timer.observe(clock() - t0)
                if ctx.done:
                    break
        except ApiError:
            if ctx.hold is None:
                raise  # nothing was touched: the caller gets the gRPC error
            if ctx.tx is None:
                await ctx.hold.release()  # nothing recorded: give the key back, then refuse
                raise
            ctx.failed = True
            ctx.end(codes.SYSTEM_MALFUNCTION, f"refused at {stage_name}")
        except StoreError as exc:
            if ctx.hold is None and ctx.tx is None:
                raise  # nothing held or recorded (the claim failed): UNAVAILABLE, resend as is
            ctx.failed = True
            ctx.end(codes.SYSTEM_MALFUNCTION, "state store unavailable")
            _log.error("store_failure", stage=stage_name, error=type(exc).__name__)
        except Exception:
            ctx.failed = True
            ctx.end(codes.SYSTEM_MALFUNCTION, "internal error")
            _log.exception("stage_failure", stage=stage_name)
        with tracing.child("answer"):
            return await self.finish(ctx)

    async def finish(self, ctx: AuthContext) -> terminal_pb2.AuthorizeResponse:
        """Record the final transition with the answer, settle the idempotency key, log one
        line. The transition is ``outcome.decide``'s, whichever way the pipeline ended."""
        if ctx.replay is not None:
            replayed = terminal_pb2.AuthorizeResponse.FromString(ctx.replay.response)
            if not replayed.mac:  # settled for a dead request: seal it for this same-KSN retry
                await self._seal(ctx, replayed)
            self._log(ctx, replayed, replayed=True)
            return replayed
        if not ctx.code:
            ctx.end(codes.SYSTEM_MALFUNCTION, "no outcome")
        await self._risk_kept(ctx)
        response: terminal_pb2.AuthorizeResponse | None = None
        if ctx.outcome is None and not ctx.failed:
            ctx.outcome = decide(ctx, time.time())  # ended early: a decline, or stand-in
        if ctx.outcome is not None:
            response = await self._record(ctx, ctx.outcome)
            if response is None:  # the outcome is not in the store: answer as a store failure
                ctx.failed = True
                ctx.end(codes.SYSTEM_MALFUNCTION, "state store unavailable")
        if response is None:
            response = await self._after_failure(ctx)
        if not response.mac:
            await self._seal(ctx, response)
        if ctx.risk_facts is not None and self.svc.risk is not None:
            self.svc.risk.settle(ctx.risk_facts, codes.to_iso(response.response_code))
        hold = ctx.hold
        if hold is not None and ctx.failed and ctx.tx is None:
            await hold.release()  # nothing was recorded: a retry is processed afresh
        elif hold is not None:
            await hold.complete(response.SerializeToString(), ctx.tx.id if ctx.tx else "")
        self._log(ctx, response, replayed=False)
        return response

    @staticmethod
    async def _risk_kept(ctx: AuthContext) -> None:
        """The risk decision's write (``Risk``), done before the answer: it ran beside the
        forward. A failed write is logged; the answer stands (it is the outcome's)."""
        kept = ctx.risk_kept
        if kept is None:
            return
        try:
            await kept
        except StoreError as exc:
            _log.error(
                "risk_decision_unsaved", tx=ctx.tx.id if ctx.tx else "", error=type(exc).__name__
            )
        except ValueError as exc:
            _log.error("risk_decision_refused", error=str(exc))

    async def _after_failure(self, ctx: AuthContext) -> terminal_pb2.AuthorizeResponse:
        """The answer when no outcome was recorded: an issuer's approval the store did not take
        is reversed (never told to the terminal); anything else stored is settled by
        ``outcome.decide`` (a decline, or an unknown outcome to reverse)."""
        if approved_unrecorded(ctx):
            assert ctx.tx is not None
            ctx.code = codes.SYSTEM_MALFUNCTION
            self.svc.reverser.schedule_unrecorded(ctx.tx)
        else:
            outcome = decide(ctx, time.time())
            if outcome is not None:
                recorded = await self._record(ctx, outcome)
                if recorded is not None:
                    return recorded
        return self._response(ctx, ctx.tx)

    async def _record(
        self, ctx: AuthContext, outcome: Outcome
    ) -> terminal_pb2.AuthorizeResponse | None:
        """Write the final transition and the key's answer in one store call; the answer is
        built from the row as it will be once written. None when the transition is not
        recorded (the key is then left as it was)."""
        svc, tx = self.svc, ctx.tx
        assert tx is not None
        response = self._response(ctx, outcome.changes.to(outcome.to_state).applied(tx))
        await self._seal(ctx, response)
        data = response.SerializeToString()
        hold = ctx.hold
        answer = Answer(hold.scope, hold.key, data) if hold is not None else None
        try:
            recorded = await svc.store.record_with_answer(
                tx.id, tx.state, outcome.to_state, outcome.changes, answer
            )
        except StoreError as exc:
            _log.error("record_failed", tx=tx.id, error=type(exc).__name__)
            return None
        ctx.tx = recorded.tx
        ctx.recorded = True
        if outcome.reverse:
            # Durable before the terminal hears 91 (the recovery sweep covers a crash here).
            await svc.reverser.queue(tx.id)
        if outcome.advise:
            # Durable before the terminal hears 00 (the advice sweep covers a crash here).
            await queue_advice(svc.saf, tx.id)
        if hold is not None:
            # The key is settled either way: never complete it twice.
            hold.completed(data, stored=recorded.answered)
        return response

    async def _seal(self, ctx: AuthContext, response: terminal_pb2.AuthorizeResponse) -> None:
        """The re-key signal and the response MAC, under the request's KSN, before the answer
        is kept under its key or sent (``switch.cardsec.answers``)."""
        r = ctx.request
        await seal(
            self.svc.protector, bytes(r.encrypted_card.ksn), "authorize", response, r.terminal_id
        )

    @staticmethod
    def _response(ctx: AuthContext, tx: Transaction | None) -> terminal_pb2.AuthorizeResponse:
        """The answer to the terminal, from ``tx``: the stored row or the one about to be."""
        r = ctx.request
        resp = terminal_pb2.AuthorizeResponse(
            response_code=code_to_proto(ctx.code),
            stan=r.stan,
            amount=money(r.amount.minor_units, r.amount.currency),
            masked_pan=ctx.masked_pan,
            message=ctx.message,
        )
        if ctx.scheme is not None:
            resp.scheme = scheme_to_proto(ctx.scheme)
        if ctx.result is not None and ctx.result.arpc:
            resp.arpc = ctx.result.arpc
        if ctx.dcc is not None:  # the receipt shows both amounts, the rate and the markup
            resp.billing_minor_units = ctx.dcc.billing_minor
            resp.billing_currency = ctx.dcc.billing_currency
            resp.conversion_rate = fx.format_rate(ctx.dcc.rate)
            resp.rate_table = ctx.dcc.table_version
            resp.dcc_markup_bps = ctx.dcc.markup_bps
        elif ctx.result is not None and ctx.result.HasField("conversion"):
            billed = ctx.result.conversion  # the scheme's (payswitch.fx), for the receipt
            resp.billing_minor_units = billed.billing_amount.minor_units
            resp.billing_currency = billed.billing_amount.currency
            resp.conversion_rate = billed.rate
            resp.rate_table = billed.rate_table
        if ctx.risk is not None and ctx.risk.code:
            resp.risk_reason = ctx.risk.reason
            resp.pin_required = ctx.risk.pin_required
        if tx is not None:
            resp.transaction_id = tx.id
            resp.rrn = tx.rrn
            resp.acquirer_id = tx.acquirer_id
            if ctx.code == codes.APPROVED:
                resp.auth_code = tx.auth_code
                resp.stood_in = ctx.stood_in
        return resp

    @staticmethod
    def _log(ctx: AuthContext, response: terminal_pb2.AuthorizeResponse, replayed: bool) -> None:
        _log.info(
            "authorize",
            terminal=ctx.request.terminal_id,
            tx=response.transaction_id,
            code=codes.to_iso(response.response_code),
            scheme=ctx.scheme.value if ctx.scheme else "",
            pan=ctx.masked_pan,
            replayed=replayed,
            ms=round((time.monotonic() - ctx.started) * 1000, 2),
        )
