"""What the risk stage keeps in the store: counters in time buckets, sightings, decisions.

Subjects are strings the risk package builds (``c:<card token>``, ``t:<terminal>``,
``m:<merchant>``, ``a:<terminal address>``): never a PAN. Counters are kept twice, in minute
buckets (read back for the last hour) and in hour buckets (read back for the last day), so a
sliding window of N minutes is the sum of the last N minute buckets (minute resolution) and
one of a day the sum of the last 24 hour buckets. Every value is an integer (counts, minor
units); adding is atomic in every backend (no read-modify-write).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

MINUTE = 60
HOUR = 3600
# How far back each granularity is read: minute buckets for windows up to an hour, hour
# buckets for windows up to a day.
SPANS: dict[int, int] = {MINUTE: 3600, HOUR: 86400}
MAX_TTL_S = 90 * 86400

ACTIONS = (
    "approve",
    "step_up",
    "review",
    "decline",
    "limit",
    "fallback_approve",
    "fallback_decline",
)

_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,200}")
_REASON = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


@dataclass(frozen=True, slots=True)
class Tally:
    """Add ``value`` to ``subject``'s ``metric`` in the buckets of the observation's time."""

    subject: str
    metric: str
    value: int


@dataclass(frozen=True, slots=True)
class Sighting:
    """``subject`` was seen with (``kind``, ``value``) now; forgotten ``ttl_s`` after the last
    time (e.g. the terminals a card was used at, a terminal's addresses)."""

    subject: str
    kind: str
    value: str
    ttl_s: int


@dataclass(frozen=True, slots=True)
class Seen:
    kind: str
    value: str
    at: float


@dataclass(frozen=True, slots=True)
class Bucket:
    gran: int  # MINUTE or HOUR
    start: int  # Unix seconds, a multiple of gran
    metric: str
    value: int


@dataclass(frozen=True, slots=True)
class Observation:
    """One request's reads and writes: the buckets of ``subjects`` and the sightings of
    ``seen_of`` are read as they were, then ``tallies`` and ``sightings`` are written."""

    subjects: tuple[str, ...]
    seen_of: tuple[str, ...]
    tallies: tuple[Tally, ...] = ()
    sightings: tuple[Sighting, ...] = ()


@dataclass(frozen=True, slots=True)
class History:
    """What the store held before an observation: buckets by subject (minute buckets of the
    last hour, hour buckets of the last day) and live sightings by subject."""

    buckets: dict[str, list[Bucket]] = field(default_factory=dict)
    seen: dict[str, list[Seen]] = field(default_factory=dict)


@dataclass(slots=True)
class Observing:
    """A request's risk observation carried by its intent write (``Store.receive_with_intent``
    ``risk=``): one write instead of two, and the risk stage then has nothing to wait for. The
    store fills ``history`` (what it held before this request) when it has made the
    observation, or ``failed`` ("timeout": not within ``slice_s``; "store": it failed) while
    the intent itself stands; a refused intent (a replay, a taken STAN) observes nothing."""

    observation: Observation
    slice_s: float
    history: History | None = None
    failed: str = ""
    error: str = ""  # the failure's exception class, for the log ("store")


@dataclass(frozen=True, slots=True)
class RiskRecord:
    """A risk decision, kept with its transaction (by id): what decided, and why."""

    tx_id: str
    action: str
    score: int
    rules_version: str
    reasons: tuple[str, ...]
    code: str  # the response code risk answered with; "" when it let the request through
    created_at: float
    shadow_version: str = ""  # the shadow rule set, when one ran beside the live one
    shadow_action: str = ""


def bucket_start(now: float, gran: int) -> int:
    return int(now) // gran * gran


def since(now: float, gran: int) -> int:
    """Buckets of ``gran`` that are read back start after this."""
    return bucket_start(now, gran) - SPANS[gran]


def _name(value: str, what: str) -> None:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{what} must be 1-200 characters of [A-Za-z0-9_.:-]")


def _count(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be an integer >= 0")


def check_observation(obs: Observation) -> None:
    """ValueError for anything a backend should not be asked to keep."""
    for s in (*obs.subjects, *obs.seen_of):
        _name(s, "subject")
    for t in obs.tallies:
        _name(t.subject, "subject")
        _name(t.metric, "metric")
        _count(t.value, "tally value")
    for sighting in obs.sightings:
        check_sighting(sighting)


def check_tallies(tallies: Sequence[Tally]) -> None:
    check_observation(Observation((), (), tuple(tallies)))


def check_sighting(s: Sighting) -> None:
    _name(s.subject, "subject")
    _name(s.kind, "kind")
    _name(s.value, "sighting value")
    if isinstance(s.ttl_s, bool) or not isinstance(s.ttl_s, int) or not 0 < s.ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl_s must be 1..{MAX_TTL_S}")


def check_record(r: RiskRecord) -> None:
    if not r.tx_id or len(r.tx_id) > 64:
        raise ValueError("tx_id must be 1-64 characters")
    if r.action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
    if isinstance(r.score, bool) or not isinstance(r.score, int):
        raise ValueError("score must be an integer")
    if not r.rules_version or len(r.rules_version) > 64:
        raise ValueError("rules_version must be 1-64 characters")
    for reason in r.reasons:
        if not _REASON.fullmatch(reason):
            raise ValueError("a reason must be 1-64 characters of [A-Za-z0-9_.-]")
    if r.code and not (len(r.code) == 2 and r.code.isdigit()):
        raise ValueError("code must be two digits or empty")
    if r.shadow_action and r.shadow_action not in ACTIONS:
        raise ValueError(f"shadow_action must be one of {', '.join(ACTIONS)}")


VERDICTS = {"fraud": "block", "false_positive": "allow"}  # an operator's verdict -> its list


@dataclass(frozen=True, slots=True)
class RiskReview:
    """A decision marked "review": waits for an operator's verdict."""

    tx_id: str
    card_token: str
    score: int
    reasons: tuple[str, ...]
    created_at: float


@dataclass(frozen=True, slots=True)
class ListedCard:
    """A card token on the operators' block or allow list (``VERDICTS``)."""

    card_token: str
    list: str  # "block" | "allow"
    reason: str
    at: float


def check_review(r: RiskReview) -> None:
    check_record(RiskRecord(r.tx_id, "review", r.score, "-", r.reasons, "", r.created_at))
    _name(r.card_token, "card_token")


def check_verdict(verdict: str) -> str:
    """The list a verdict puts the card on; ValueError for an unknown verdict."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
    return VERDICTS[verdict]
