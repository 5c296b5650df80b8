"""One request's risk assessment inside its slice of the budget, with the fallback, a shadow
rule set, reload of changed rule files and the metrics.

The store observation (read the history, add this request) is made by the request's intent
write (``observing``, then ``decide`` on what it read: no wait in the stage) or, without an
intent, by ``assess``; where it is a call of its own it is bounded by ``[risk] slice_ms``.
When the store does not answer within it, or fails, the configured
fallback decides: approve up to ``fallback_floor`` of the currency, otherwise decline
``fallback_code`` — measured, logged and counted (``payswitch_risk_fallback_total``). The
rules run on the event loop thread: compiled CEL over one converted context, microseconds.

Operators' lists (``Store.risk_listed``: cards blocked after a review found fraud, or allowed
after a false positive) are read whole at open and again every ``reload_s``: a verdict reaches
every switch process within ``reload_s``.

Reload: every ``reload_s`` the rule files' modification time and size are checked (off the
event loop); a changed file is loaded and checked in a worker thread and swapped in whole, or
refused (logged, counted) with the previous set kept. A shadow set runs beside the live one
on the same signals: its verdict is logged when it differs, counted, and kept with the
decision, never acted on. Staleness: a rule change reaches every switch process within
``reload_s`` of the file changing on its machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payswitch.logs import get as get_logger
from payswitch.world.topology import RiskConfig
from switch.core import metrics
from switch.domain.errors import StoreError
from switch.domain.risk import History, Observation, Observing, RiskRecord, RiskReview
from switch.risk import rules as rulebook
from switch.risk.facts import Facts, observation, outcome_tallies
from switch.risk.rules import RulesError, RuleSet, Verdict
from switch.risk.signals import build
from switch.store.risk import RiskStore, observe_within

_log = get_logger("switch.risk")

FALLBACK_MESSAGE = "risk check unavailable"
# Each rule's time is observed on one assessment in this many (its hits on every one): a
# histogram observation per rule per request was a tenth of the stage's CPU.
RULE_TIMING_EVERY = 8


@dataclass(frozen=True, slots=True)
class Decision:
    action: str
    code: str  # "" = let the request through
    score: int
    reasons: tuple[str, ...]
    message: str
    version: str
    pin_required: bool = False
    shadow_version: str = ""
    shadow_action: str = ""
    fallback: str = ""  # why the fallback decided ("timeout", "store"), "" when the rules did

    @property
    def reason(self) -> str:
        """The reason code a terminal may show: the highest-scoring rule's id."""
        return self.reasons[0] if self.reasons else ""

    def record(self, tx_id: str, now: float) -> RiskRecord:
        return RiskRecord(
            tx_id=tx_id,
            action=self.action,
            score=self.score,
            rules_version=self.version,
            reasons=self.reasons,
            code=self.code,
            created_at=now,
            shadow_version=self.shadow_version,
            shadow_action=self.shadow_action,
        )


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class RiskEngine:
    """The risk stage's shared part: one per switch process."""

    def __init__(
        self,
        cfg: RiskConfig,
        store: RiskStore,
        live: RuleSet,
        *,
        countries: Mapping[str, str] | None = None,
        shadow: RuleSet | None = None,
        live_path: Path | None = None,
        shadow_path: Path | None = None,
    ) -> None:
        self.cfg = cfg
        self._store = store
        self.live = live
        self.shadow = shadow
        self._countries = dict(countries or {})
        self._paths = {"live": live_path, "shadow": shadow_path}
        self._stamps: dict[str, tuple[int, int] | None] = {"live": None, "shadow": None}
        self._slice_s = cfg.slice_ms / 1000
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._listed: dict[str, str] = {}  # card token -> "block" | "allow" (the store's)
        self._assessed = 0
        self._metrics_of: object = None
        self._by_rule: dict[str, tuple[Any, Any]] = {}

    @classmethod
    async def open(
        cls,
        cfg: RiskConfig,
        store: RiskStore,
        countries: Mapping[str, str],
        source: Path | None,
    ) -> RiskEngine:
        """Load the configured rule files (RulesError: the switch does not start without a
        valid live set)."""
        live_path = cfg.path(cfg.rules, source)
        shadow_path = cfg.path(cfg.shadow_rules, source) if cfg.shadow_rules else None
        live = await asyncio.to_thread(rulebook.load, live_path)
        shadow = await asyncio.to_thread(rulebook.load, shadow_path) if shadow_path else None
        engine = cls(
            cfg,
            store,
            live,
            countries=countries,
            shadow=shadow,
            live_path=live_path,
            shadow_path=shadow_path,
        )
        # An empty observation reads and writes nothing; it prepares the backend's statements
        # (Cassandra) before the first payment, whose slice would otherwise pay for it.
        await store.risk_observe(Observation((), ()), time.time())
        await engine.refresh_lists()
        engine._stamps = {
            "live": await asyncio.to_thread(_stamp, live_path),
            "shadow": await asyncio.to_thread(_stamp, shadow_path) if shadow_path else None,
        }
        return engine

    # --- facts ------------------------------------------------------------------------------
    def country_of(self, terminal_id: str) -> str:
        return self._countries.get(terminal_id, "")

    def is_small(self, amount: int, currency: str) -> bool:
        small = self.cfg.small_of(currency)
        return small is not None and amount <= small

    # --- decisions --------------------------------------------------------------------------
    def observing(self, f: Facts) -> Observing:
        """Request ``f``'s observation, for its intent's write to make (``Store.
        receive_with_intent``) within the slice; ``decide`` then needs no store."""
        return Observing(observation(f), self._slice_s)

    def decide(self, f: Facts, seen: Observing, t0: float | None = None) -> Decision:
        """The decision on request ``f`` from what its intent observed: the rules on its
        signals, or the fallback when the observation was not made in time or failed. No
        wait: the risk stage's own time is this call's (``t0``: when the observation began,
        for the fallback's log)."""
        if seen.history is None:
            reason = seen.failed or "store"
            if reason == "store":
                _log.warning("risk_store_failed", error=seen.error)
            return self._fallback(f, reason, time.perf_counter() if t0 is None else t0)
        return self._rules(f, seen.history)

    async def assess(self, f: Facts) -> Decision:
        """The decision on request ``f`` with its own observation (a caller without an intent
        to carry it: the backtest, the benchmark), made as an intent makes it
        (``observe_within``)."""
        t0 = time.perf_counter()
        seen = self.observing(f)
        await observe_within(self._store, seen, f.now)
        return self.decide(f, seen, t0)

    def _rules(self, f: Facts, history: History) -> Decision:
        env = rulebook.environment(build(f, history))
        m = metrics.get()
        live = self.live
        listed = self._listed.get(f.card_token, "")
        self._assessed += 1
        timed = self._assessed % RULE_TIMING_EVERY == 0
        verdict = live.evaluate(f, env, self._timer if timed else self._hit, listed)
        m.risk_decisions.labels("live", verdict.action).inc()
        shadow_version = shadow_action = ""
        shadow = self.shadow
        if shadow is not None:
            seen = shadow.evaluate(f, env, None, listed)
            shadow_version, shadow_action = shadow.version, seen.action
            m.risk_decisions.labels("shadow", seen.action).inc()
            for reason in seen.reasons:
                m.risk_rule_hits.labels("shadow", reason).inc()
            if (seen.action, seen.code) != (verdict.action, verdict.code):
                _log.info(
                    "risk_shadow_differs",
                    live=live.version,
                    live_action=verdict.action,
                    shadow=shadow.version,
                    shadow_action=seen.action,
                    shadow_reasons=list(seen.reasons),
                    shadow_score=seen.score,
                )
        return self._decision(verdict, live.version, shadow_version, shadow_action)

    @staticmethod
    def _decision(v: Verdict, version: str, shadow_version: str, shadow_action: str) -> Decision:
        return Decision(
            action=v.action,
            code=v.code,
            score=v.score,
            reasons=v.reasons,
            message=v.message,
            version=version,
            pin_required=v.pin_required,
            shadow_version=shadow_version,
            shadow_action=shadow_action,
        )

    def _timer(self, rule: str, seconds: float, hit: bool) -> None:
        seconds_of, hits_of = self._rule_metrics(rule)
        seconds_of.observe(seconds)
        if hit:
            hits_of.inc()

    def _hit(self, rule: str, _seconds: float, hit: bool) -> None:
        if hit:
            self._rule_metrics(rule)[1].inc()

    def _rule_metrics(self, rule: str) -> tuple[Any, Any]:
        """A rule's labelled time and hit series, looked up once (every rule is timed on every
        request: a label lookup each time was a fifth of the stage's own CPU)."""
        m = metrics.get()
        if m is not self._metrics_of:  # a new registry (tests reset it): look up again
            self._metrics_of, self._by_rule = m, {}
        found = self._by_rule.get(rule)
        if found is None:
            found = (m.risk_rule_seconds.labels(rule), m.risk_rule_hits.labels("live", rule))
            self._by_rule[rule] = found
        return found

    def _fallback(self, f: Facts, reason: str, t0: float) -> Decision:
        floor = self.cfg.floor_of(f.currency)
        approve = floor is not None and f.amount <= floor
        outcome = "approve" if approve else "decline"
        metrics.get().risk_fallback.labels(reason, outcome).inc()
        _log.warning(
            "risk_fallback",
            reason=reason,
            outcome=outcome,
            amount=f.amount,
            currency=f.currency,
            ms=round((time.perf_counter() - t0) * 1000, 2),
        )
        return Decision(
            action="fallback_approve" if approve else "fallback_decline",
            code="" if approve else self.cfg.fallback_code,
            score=0,
            reasons=("fallback_" + reason,),
            message="" if approve else FALLBACK_MESSAGE,
            version=self.live.version,
            fallback=reason,
        )

    async def keep(self, tx_id: str, decision: Decision, f: Facts) -> None:
        """Store the decision with its transaction, and queue a "review" for an operator. A
        fallback's is written in the background (the store just failed to answer in time: the
        request does not wait for it again)."""
        now = time.time()
        record = decision.record(tx_id, now)
        if decision.fallback:
            self._spawn(self._store.put_risk_decision(record), "risk_decision_unsaved")
            return
        await self._store.put_risk_decision(record)
        if decision.action == "review":
            review = RiskReview(tx_id, f.card_token, decision.score, decision.reasons, now)
            await self._store.put_risk_review(review)

    async def refresh_lists(self) -> None:
        """Read the operators' card lists from the store (StoreError: the old ones stay)."""
        self._listed = {c.card_token: c.list for c in await self._store.risk_listed()}

    def settle(self, f: Facts, code: str) -> None:
        """Count the answer's outcome (a decline, a wrong PIN) for later requests, in the
        background: the answer does not wait for it."""
        tallies = outcome_tallies(f, code)
        if tallies:
            self._spawn(self._store.risk_add(tallies, time.time()), "risk_outcome_unsaved")

    def _spawn(self, coro: Coroutine[Any, Any, None], event: str) -> None:
        async def run() -> None:
            try:
                await coro
            except (StoreError, ValueError) as exc:
                _log.warning(event, error=type(exc).__name__)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the background writes (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- reload -----------------------------------------------------------------------------
    async def reload_changed(self) -> list[str]:
        """Load every rule file that changed since it was last read; the sets swapped in."""
        swapped = []
        for which in ("live", "shadow"):
            path = self._paths[which]
            if path is None:
                continue
            stamp = await asyncio.to_thread(_stamp, path)
            if stamp == self._stamps[which]:
                continue
            self._stamps[which] = stamp
            if stamp is None:
                _log.error("risk_rules_missing", ruleset=which, path=str(path))
                metrics.get().risk_reloads.labels(which, "refused").inc()
                continue
            try:
                loaded = await asyncio.to_thread(rulebook.load, path)
            except RulesError as exc:
                _log.error("risk_rules_refused", ruleset=which, error=str(exc))
                metrics.get().risk_reloads.labels(which, "refused").inc()
                continue
            if which == "live":
                self.live = loaded
            else:
                self.shadow = loaded
            metrics.get().risk_reloads.labels(which, "loaded").inc()
            _log.info("risk_rules_loaded", ruleset=which, version=loaded.version)
            swapped.append(which)
        return swapped

    def start(self) -> None:
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.reload_s)  # the poll period, not a synchronisation
            try:
                await self.reload_changed()
                await self.refresh_lists()
            except Exception:  # a watcher never dies of a surprise: the file would only age
                _log.exception("risk_reload_failed")

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self.drain()
