"""A versioned rule set: a TOML file of CEL expressions over the signals, decided in order.

CEL (Common Expression Language: non-Turing-complete, no side effects, no I/O) through the
``common-expression-language`` package, the Rust implementation's Python binding: each
expression is compiled once when the file is loaded and run per request in microseconds. A
rule set can only compare and combine signals; it cannot call out, loop for ever or touch
the process.

The file (``topology/risk/rules-v1.toml`` is the default)::

    version = "rules-v1"             # kept with every decision
    [thresholds]                     # score -> action (each optional)
    step_up = 40                     # ask for the PIN when the request had none (65)
    review = 60                      # let through, marked for an operator's review
    decline = 80                     # decline 59
    [lists]                          # checked first, no scores involved
    block_cards = [token, ...]       # also block_bins (BIN prefixes), block_terminals,
    allow_cards = [token, ...]       #   block_merchants; allow_terminals, allow_merchants
    [[limits]]                       # hard limits: the first that holds declines with its code
    id = "card_frequency"
    when = "card.count_10m >= 8"
    code = "65"                      # 61 (amount) or 65 (frequency)
    message = "too many payments"
    [[rules]]                        # every rule that holds adds its score
    id = "card_testing"              # the reason code kept and shown to the terminal
    when = "small && card.small_1h >= 3"
    score = 80
    message = "suspected card testing"

Order: a blocked card, BIN, terminal or merchant is declined 59; then the limits; then an
allowed card, terminal or merchant goes through unscored; else the rules' scores add up and
the thresholds decide. Loading refuses (``RulesError``, naming the rule) an unknown key, a
malformed expression, or one that does not give true or false on the signals' template.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from payswitch import codes
from switch.risk import celcore
from switch.risk.facts import Facts
from switch.risk.signals import Signals, template

cel = celcore.load()  # the native core alone: the package's __init__ loads its CLI

LIMIT_CODES = (codes.EXCEEDS_AMOUNT_LIMIT, codes.EXCEEDS_FREQUENCY_LIMIT)
MAX_MESSAGE = 80

Timer = Callable[[str, float, bool], None]  # (rule id, seconds, hit)


class RulesError(ValueError):
    """A rule file that cannot be used: nothing of it is applied."""


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    when: str
    program: Any  # cel.Program
    score: int = 0
    code: str = ""  # limits only
    message: str = ""

    def holds(self, env: Any) -> bool:
        return self.program.execute(env) is True


@dataclass(frozen=True, slots=True)
class Verdict:
    action: str  # switch.domain.risk.ACTIONS
    score: int
    reasons: tuple[str, ...]
    code: str  # "" = let the request through
    message: str = ""
    pin_required: bool = False


@dataclass(frozen=True, slots=True)
class Lists:
    block_cards: frozenset[str] = frozenset()
    block_bins: tuple[str, ...] = ()
    block_terminals: frozenset[str] = frozenset()
    block_merchants: frozenset[str] = frozenset()
    allow_cards: frozenset[str] = frozenset()
    allow_terminals: frozenset[str] = frozenset()
    allow_merchants: frozenset[str] = frozenset()

    def blocked(self, f: Facts) -> bool:
        return (
            f.card_token in self.block_cards
            or any(f.bin.startswith(p) for p in self.block_bins)
            or f.terminal_id in self.block_terminals
            or f.merchant_id in self.block_merchants
        )

    def allowed(self, f: Facts) -> bool:
        return (
            f.card_token in self.allow_cards
            or f.terminal_id in self.allow_terminals
            or f.merchant_id in self.allow_merchants
        )


@dataclass(frozen=True, slots=True)
class RuleSet:
    version: str
    rules: tuple[Rule, ...]
    limits: tuple[Rule, ...] = ()
    lists: Lists = field(default_factory=Lists)
    step_up: int | None = None
    review: int | None = None
    decline: int | None = None

    def evaluate(self, f: Facts, env: Any, timer: Timer | None = None, listed: str = "") -> Verdict:
        """The verdict on one request, ``env`` its signals (``environment``; see the module
        docstring for the order). ``listed``: the card on the operators' lists in the store
        ("block", "allow"), beside the file's own lists."""
        if listed == "block" or self.lists.blocked(f):
            return Verdict("decline", 0, ("block_list",), codes.SUSPECTED_FRAUD, "not accepted")
        for limit in self.limits:
            if _run(limit, env, timer):
                return Verdict("limit", 0, (limit.id,), limit.code, limit.message)
        if listed == "allow" or self.lists.allowed(f):
            return Verdict("approve", 0, ("allow_list",), "")
        hits = [r for r in self.rules if _run(r, env, timer)]
        hits.sort(key=lambda r: -r.score)
        score = sum(r.score for r in hits)
        reasons = tuple(r.id for r in hits)
        message = hits[0].message if hits else ""
        if self.decline is not None and score >= self.decline:
            return Verdict("decline", score, reasons, codes.SUSPECTED_FRAUD, message)
        if self.review is not None and score >= self.review:
            return Verdict("review", score, reasons, "", message)
        if self.step_up is not None and score >= self.step_up:
            if f.has_pin:
                return Verdict("step_up", score, reasons, "", message)
            return Verdict(
                "step_up",
                score,
                reasons,
                codes.EXCEEDS_FREQUENCY_LIMIT,
                "PIN required",
                pin_required=True,
            )
        return Verdict("approve", score, reasons, "", message)


def environment(signals: Signals) -> Any:
    """The signals as a CEL context: converted once per request, then shared by every rule
    (and by a shadow set): about 1 us per rule instead of a conversion per rule."""
    return cel.Context(variables=signals)


def _run(rule: Rule, env: Any, timer: Timer | None) -> bool:
    t0 = time.perf_counter()
    try:
        hit = rule.holds(env)
    except Exception:  # checked on load; a runtime type error counts as not holding
        hit = False
    if timer is not None:
        timer(rule.id, time.perf_counter() - t0, hit)
    return hit


# --- loading -------------------------------------------------------------------------------

_TOP = {"version", "thresholds", "lists", "limits", "rules", "description"}
_RULE_KEYS = {"id", "when", "score", "message", "description"}
_LIMIT_KEYS = {"id", "when", "code", "message", "description"}
_LIST_KEYS = set(Lists.__dataclass_fields__)


def _id(raw: dict[str, Any], where: str) -> str:
    value = raw.get("id")
    ok = isinstance(value, str) and 0 < len(value) <= 64
    if not ok or not all(c.isalnum() or c in "_-." for c in str(value)):
        raise RulesError(f"{where}: id must be 1-64 characters of [A-Za-z0-9_.-]")
    return str(value)


def _compile(raw: dict[str, Any], rid: str, sample: Any) -> Any:
    text = raw.get("when")
    if not isinstance(text, str) or not text.strip():
        raise RulesError(f"rule {rid}: when must be a CEL expression")
    try:
        program = cel.compile(text)
        result = program.execute(sample)
    except Exception as exc:
        raise RulesError(f"rule {rid}: {type(exc).__name__}: {exc}") from None
    if not isinstance(result, bool):
        raise RulesError(f"rule {rid}: when must give true or false, not {result!r}")
    return program


def _message(raw: dict[str, Any], rid: str) -> str:
    value = raw.get("message", "")
    if not isinstance(value, str) or len(value) > MAX_MESSAGE:
        raise RulesError(f"rule {rid}: message must be text of at most {MAX_MESSAGE} characters")
    return value


def _threshold(raw: dict[str, Any], key: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise RulesError(f"thresholds.{key} must be a positive integer")
    return value


def _lists(raw: Any) -> Lists:
    if not isinstance(raw, dict) or set(raw) - _LIST_KEYS:
        raise RulesError(f"lists: known keys are {sorted(_LIST_KEYS)}")
    values: dict[str, Any] = {}
    for key in _LIST_KEYS:
        items = raw.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise RulesError(f"lists.{key} must be a list of strings")
        if key == "block_bins" and not all(i.isdigit() and len(i) <= 8 for i in items):
            raise RulesError("lists.block_bins: each entry is a BIN prefix of 1-8 digits")
        values[key] = tuple(items) if key == "block_bins" else frozenset(items)
    return Lists(**values)


def parse(doc: dict[str, Any]) -> RuleSet:
    unknown = set(doc) - _TOP
    if unknown:
        raise RulesError(f"unknown keys {sorted(unknown)}")
    version = doc.get("version")
    if not isinstance(version, str) or not 0 < len(version) <= 64:
        raise RulesError("version must be 1-64 characters")
    sample = environment(template())
    seen: set[str] = set()
    rules, limits = [], []
    for raw in doc.get("limits", []):
        rid = _id(raw, "limit")
        if set(raw) - _LIMIT_KEYS:
            raise RulesError(f"limit {rid}: unknown keys {sorted(set(raw) - _LIMIT_KEYS)}")
        code = raw.get("code")
        if code not in LIMIT_CODES:
            raise RulesError(f"limit {rid}: code must be one of {', '.join(LIMIT_CODES)}")
        limits.append(
            Rule(rid, raw["when"], _compile(raw, rid, sample), 0, code, _message(raw, rid))
        )
        seen.add(rid)
    for raw in doc.get("rules", []):
        rid = _id(raw, "rule")
        if set(raw) - _RULE_KEYS:
            raise RulesError(f"rule {rid}: unknown keys {sorted(set(raw) - _RULE_KEYS)}")
        score = raw.get("score")
        if isinstance(score, bool) or not isinstance(score, int) or not 0 < score <= 1000:
            raise RulesError(f"rule {rid}: score must be an integer 1..1000")
        rules.append(
            Rule(rid, raw["when"], _compile(raw, rid, sample), score, "", _message(raw, rid))
        )
        if rid in seen:
            raise RulesError(f"rule {rid}: id used twice")
        seen.add(rid)
    thresholds = doc.get("thresholds", {})
    if not isinstance(thresholds, dict) or set(thresholds) - {"step_up", "review", "decline"}:
        raise RulesError("thresholds: known keys are step_up, review, decline")
    return RuleSet(
        version=version,
        rules=tuple(rules),
        limits=tuple(limits),
        lists=_lists(doc.get("lists", {})),
        step_up=_threshold(thresholds, "step_up"),
        review=_threshold(thresholds, "review"),
        decline=_threshold(thresholds, "decline"),
    )


def load(path: str | Path) -> RuleSet:
    """Read and check a rule file (blocking: call it off the event loop)."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RulesError(f"{p}: {exc}") from None
    try:
        return parse(doc)
    except RulesError as exc:
        raise RulesError(f"{p}: {exc}") from None
