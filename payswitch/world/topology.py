"""The topology file: one TOML document describing the whole simulated four-party world.

Every process (switch, acquirer, scheme and issuer nodes) reads the same file and takes
its own part. Sections:

``[switch]``       id, listen address, budget and margins, load-shedding limits, the
                   ``local_time`` window, the follow-up policy (``follow_ups``).
``[[acquirers]]``  id, listen, which schemes it serves, latency distribution, fault rates.
``[[schemes]]``    id, listen, which card brands it carries.
``[[issuers]]``    id, listen, BIN ranges, accounts and cards (optionally with a ``pin``).
``[[merchants]]``  id, name, MCC, acquirers in order of preference, ``follow_ups`` (optional).
``[[terminals]]``  id, merchant.
``[breaker]``      circuit breakers of the switch's acquirer connectors
(``switch.routing.breakers``). ``[standin]``      stand-in processing rules of the switch
(``switch.routing.standin``). ``[settlement]``, ``[[fees]]``, issuers' ``hold_ttl_s``: see
``payswitch.world.settlement``. ``[tracing]``: OpenTelemetry spans of every process
(``payswitch.tracing``).

Amounts are integers in minor units. BIN entries are a prefix (``"411111"``) or an
inclusive range of equal-length prefixes (``"400000-400099"``).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, TypeVar, TypeVarTuple

from payswitch.cards import CardError, Scheme, check_expiry, luhn_valid
from payswitch.fx import RateTable
from payswitch.money import is_currency
from payswitch.world.fx_rates import RatesError, parse_markup, parse_tables
from payswitch.world.settlement import (
    DEFAULT_HOLD_TTL_S,
    FeeConfig,
    SettlementConfig,
    SettlementConfigError,
    parse_fees,
    parse_hold_ttl,
    parse_settlement,
)


class TopologyError(ValueError):
    """The topology file is malformed; the message names the offending entry."""


class _Entry(Protocol):
    """Any entry of the topology with an id."""

    @property
    def id(self) -> str: ...


class _Node(_Entry, Protocol):
    """A process of the topology: an id and a listen address."""

    @property
    def listen(self) -> str: ...


_E = TypeVar("_E", bound=_Entry)
_T = TypeVar("_T")
_Args = TypeVarTuple("_Args")


@dataclass(frozen=True, slots=True)
class Latency:
    """Added latency of a node, in milliseconds.

    ``fixed``: always ``ms``. ``uniform``: between ``min_ms`` and ``max_ms``.
    ``lognormal``: median ``median_ms``, 99th percentile ``p99_ms``.
    """

    distribution: str = "fixed"
    ms: float = 0.0
    min_ms: float = 0.0
    max_ms: float = 0.0
    median_ms: float = 0.0
    p99_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Faults:
    """Fault injection rates, each a probability in [0, 1].

    ``error_rate``: answer UNAVAILABLE without forwarding.
    ``timeout_rate``: never answer (hold the call until the caller's deadline).
    ``drop_response_rate``: forward, let the issuer act, then never answer.
    """

    error_rate: float = 0.0
    timeout_rate: float = 0.0
    drop_response_rate: float = 0.0


DEVICE_BINDINGS = ("first-use", "registered")
ADMISSION_MODES = ("adaptive", "fixed")


@dataclass(frozen=True, slots=True)
class SwitchConfig:
    id: str = "switch-1"
    listen: str = "127.0.0.1:50051"
    # Card networks allow about 2 s end to end; the switch never uses more than this.
    max_budget_ms: int = 2000
    # Kept back from the terminal's deadline for recording the outcome and answering.
    margin_ms: int = 60
    # Terminal RPCs processed at once in one switch process; above it RESOURCE_EXHAUSTED at
    # once rather than queueing past the terminal's deadline.
    max_in_flight: int = 256
    # Admission (switch/core/concurrency.py): "adaptive" (a concurrency limit that follows the
    # switch's own latency, between limit_min and max_in_flight, starting at limit_initial;
    # tolerance: how far the RTT may rise over its minimum before the limit shrinks) with a
    # queue of at most queue_ms (and never past a request's deadline), or "fixed" (limit
    # max_in_flight, no queue). background_share: the part of the limit store-and-forward
    # work (reversals, advices) may take at once.
    admission: str = "adaptive"
    limit_initial: int = 64
    limit_min: int = 32
    limit_tolerance: float = 2.0
    limit_window_ms: int = 100
    queue_ms: int = 400
    background_share: float = 0.25
    # Per-terminal token bucket for the money-moving RPCs.
    terminal_rate_per_s: float = 50.0
    terminal_burst: int = 100
    # Terminal mTLS (issue 5): certificates from ``certs_dir`` (``payswitch-certs``; the
    # switch's --certs-dir overrides it, default .run/certs). Off: plaintext terminal port.
    tls: bool = False
    certs_dir: str = ""
    # The AdminService's own port (mTLS with the admin CA when tls is on); "" = no admin port.
    admin_listen: str = ""
    # Prometheus /metrics over HTTP; "" = not served.
    metrics_listen: str = ""
    # How often each switch process re-reads terminal revocations from the store.
    registry_refresh_s: float = 1.0
    # An idempotency key left IN_FLIGHT this long was left by a dead request and is settled
    # by the next retry (switch/idempotency.py); must stay far above max_budget_ms.
    abandoned_key_s: float = 60.0
    # Devices (DUKPT initial key IDs): "first-use" binds an unknown device to the terminal whose
    # request first verifies under it; "registered" refuses a device the key-injection facility
    # has not registered to that terminal (AdminService.RegisterDevice), nothing recorded.
    device_binding: str = "first-use"
    # A request's local_time (the terminal's local time, no zone) must be within this of the
    # switch's UTC clock; at least 14 h, the widest zone offset.
    local_time_window_s: float = 86400.0
    # Which terminals may capture, void or refund a sale: "same_terminal" (only the one that
    # made it, the default) or "same_merchant" (any terminal of its merchant). A merchant's
    # own ``follow_ups`` overrides it.
    follow_ups: str = "same_terminal"


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """``[network]``: how the switch and the network nodes talk to each other.

    ``tls`` (default on): mTLS on every hop and back-office call, each process with its own
    network certificate (``payswitch-certs``), each server checking its caller's identity
    (``network.authz``). Off only for tests and benchmarks that want plaintext hops: every
    process then says so loudly at start.
    """

    tls: bool = True


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """``[tracing]``: spans of every process (``payswitch.tracing``), off by default.

    ``sample_ratio`` (0..1) samples traces at their root; every hop follows its caller's
    decision. Spans go to ``dir`` (``PAYSWITCH_TRACE_DIR`` overrides it; ``payswitch-stack``
    sets ``<run-dir>/traces``), one JSON-lines file per process rotated at ``max_file_mb``, and
    to OTLP at ``otlp_endpoint`` when it is set.
    """

    enabled: bool = False
    sample_ratio: float = 1.0
    dir: str = ".run/traces"
    otlp_endpoint: str = ""
    max_file_mb: int = 256


_TRACING_KEYS = frozenset(f.name for f in fields(TracingConfig))
_TRACING_DEFAULT = TracingConfig()


def _tracing(raw: object) -> TracingConfig:
    if not isinstance(raw, dict):
        raise TopologyError("tracing: must be a table")
    unknown = sorted(set(raw) - _TRACING_KEYS)
    if unknown:
        raise TopologyError(f"tracing: unknown keys {unknown}")
    ratio = raw.get("sample_ratio", 1.0)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
        raise TopologyError("tracing: sample_ratio must be a number from 0 to 1")
    for key in ("dir", "otlp_endpoint"):
        if not isinstance(raw.get(key, ""), str):
            raise TopologyError(f"tracing: {key} must be a string")
    return TracingConfig(
        enabled=_bool(raw, "enabled", False, "tracing"),
        sample_ratio=float(ratio),
        dir=str(raw.get("dir", "")) or _TRACING_DEFAULT.dir,
        otlp_endpoint=str(raw.get("otlp_endpoint", "")),
        max_file_mb=_positive_int(raw, "max_file_mb", _TRACING_DEFAULT.max_file_mb, "tracing"),
    )


FOLLOW_UP_POLICIES = ("same_terminal", "same_merchant")
MIN_LOCAL_TIME_WINDOW_S = 14 * 3600.0


def _follow_ups(raw: dict[str, Any], default: str, where: str) -> str:
    value = raw.get("follow_ups", default)
    if value not in FOLLOW_UP_POLICIES and not (value == "" and default == ""):
        raise TopologyError(f"{where}: follow_ups must be one of {', '.join(FOLLOW_UP_POLICIES)}")
    return str(value)


@dataclass(frozen=True, slots=True)
class SafConfig:
    """``[saf]``: the store-and-forward queue (switch/saf/) and the recovery sweep."""

    max_attempts: int = 10  # then the item is dead-lettered
    max_age_s: float = 86_400.0  # ... or once this old, whichever comes first
    base_delay_s: float = 0.5  # backoff: full jitter up to min(max_delay, base * 2^n)
    max_delay_s: float = 60.0
    attempt_timeout_s: float = 2.0  # one send to the acquirer
    lease_s: float = 15.0  # a worker's hold on an item; a dead worker's lapses after this
    poll_interval_s: float = 1.0  # how often a worker looks for due items
    scan_interval_s: float = 5.0  # recovery sweep of stale PENDING / UNKNOWN transactions
    concurrency: int = 16  # items sent at once by one switch process


_SAF_INTS = ("max_attempts", "concurrency")
_SAF_NUMBERS = (
    "max_age_s",
    "base_delay_s",
    "max_delay_s",
    "attempt_timeout_s",
    "lease_s",
    "poll_interval_s",
    "scan_interval_s",
)


def _saf(raw: object) -> SafConfig:
    if not isinstance(raw, dict):
        raise TopologyError("saf: must be a table")
    unknown = sorted(set(raw) - set(_SAF_INTS) - set(_SAF_NUMBERS))
    if unknown:
        raise TopologyError(f"saf: unknown keys {unknown}")
    d = SafConfig()
    values: dict[str, object] = {k: _positive_int(raw, k, getattr(d, k), "saf") for k in _SAF_INTS}
    for k in _SAF_NUMBERS:
        values[k] = _positive_number(raw, k, getattr(d, k), "saf")
    cfg = SafConfig(**values)  # type: ignore[arg-type]
    if cfg.max_delay_s < cfg.base_delay_s:
        raise TopologyError("saf: max_delay_s must be >= base_delay_s")
    if cfg.lease_s <= cfg.attempt_timeout_s:
        raise TopologyError("saf: lease_s must be longer than attempt_timeout_s")
    return cfg


@dataclass(frozen=True, slots=True)
class AcquirerConfig:
    id: str
    listen: str
    schemes: tuple[Scheme, ...]
    latency: Latency = Latency()
    faults: Faults = Faults()
    margin_ms: int = 20
    # The switch's connector never waits longer than this for this acquirer's answer (the
    # request's remaining budget caps it further).
    timeout_ms: int = 2000
    # The currency it settles with its merchants in (issue 16): each entry's net converted at
    # the scheme's rate of the settlement day; "" settles every entry in its own currency.
    settlement_currency: str = ""


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Per-acquirer circuit breaker of the switch (``switch.routing.breakers``).

    Opens after ``failure_threshold`` consecutive failures, or when at least ``min_volume``
    calls in the last ``window_s`` seconds failed at ``error_rate`` or more; stays open
    ``open_s`` seconds, then admits up to ``half_open_probes`` probe requests at once.
    ``connect_timeout_ms``: how long a request may wait for a connection to the acquirer
    before it counts as refused (certainly not sent) and fails over.
    """

    failure_threshold: int = 5
    error_rate: float = 0.5
    window_s: float = 10.0
    min_volume: int = 10
    open_s: float = 5.0
    half_open_probes: int = 1
    connect_timeout_ms: int = 100


@dataclass(frozen=True, slots=True)
class StandInConfig:
    """Stand-in processing (STIP) rules of the switch (``switch.routing.standin``).

    Applied only when no acquirer could take a request. ``floor``: the highest amount, per
    currency in minor units, the switch approves by itself (a currency not listed is never
    stood in). ``cumulative``: per currency, the most one card (token) may be approved in
    stand-in per ``window_s`` (fixed windows). ``allowed_mccs`` (empty: any) and
    ``blocked_mccs``: merchant categories. ``negative_tokens`` / ``negative_bins``: cards
    never approved in stand-in, by card token or BIN range. ``advice_interval_s``: how often
    stood-in approvals are re-sent to the issuer as advices until acknowledged.

    The issuers' stand-in files (``payswitch.stipfile``) live in ``files_dir``: each issuer
    writes its own every ``publish_interval_s``; the switch reads them every ``refresh_s`` and
    stands in for no card of an issuer whose file is missing, does not verify or was published
    more than ``max_age_s`` ago (so a card the issuer blocks is declined in stand-in at most
    about ``publish_interval_s + refresh_s`` later, and never after ``max_age_s``).
    """

    enabled: bool = False
    floor: tuple[tuple[str, int], ...] = ()
    cumulative: tuple[tuple[str, int], ...] = ()
    window_s: int = 86400
    allowed_mccs: tuple[str, ...] = ()
    blocked_mccs: tuple[str, ...] = ()
    negative_tokens: tuple[str, ...] = ()
    negative_bins: tuple[BinRange, ...] = ()
    advice_interval_s: float = 5.0
    files_dir: str = ".run/standin"
    publish_interval_s: float = 30.0
    refresh_s: float = 5.0
    max_age_s: float = 300.0

    def floor_of(self, currency: str) -> int | None:
        return dict(self.floor).get(currency)

    def cumulative_of(self, currency: str) -> int | None:
        return dict(self.cumulative).get(currency)


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """The switch's risk stage (``switch.risk``): signals, declarative rules, fallback.

    ``rules``: the live rule set (a TOML file, relative paths from the topology file's folder);
    ``shadow_rules``: a candidate set run beside it that only logs and counts ("" = none);
    both re-read when changed, every ``reload_s``. ``slice_ms``: the stage's share of the
    budget; past it (or with the store down) the fallback decides: approve up to
    ``fallback_floor`` (per currency, minor units; a currency not listed never), otherwise
    decline ``fallback_code``. ``small``: per currency, the amount at or below which a payment
    counts as small (card testing).
    """

    enabled: bool = False
    rules: str = "risk/rules-v1.toml"
    shadow_rules: str = ""
    reload_s: float = 2.0
    slice_ms: int = 100
    fallback_floor: tuple[tuple[str, int], ...] = ()
    fallback_code: str = "05"
    small: tuple[tuple[str, int], ...] = ()

    def floor_of(self, currency: str) -> int | None:
        return dict(self.fallback_floor).get(currency)

    def small_of(self, currency: str) -> int | None:
        return dict(self.small).get(currency)

    def path(self, value: str, source: Path | None) -> Path:
        """A rules path as the topology means it: relative to the topology file's folder."""
        p = Path(value)
        if p.is_absolute() or source is None:
            return p
        return source.parent / p


@dataclass(frozen=True, slots=True)
class SchemeConfig:
    id: str
    listen: str
    brands: tuple[Scheme, ...]
    latency: Latency = Latency()
    faults: Faults = Faults()
    margin_ms: int = 20
    # Daily rate tables it converts with (payswitch.world.fx_rates); () converts nothing.
    rates: tuple[RateTable, ...] = ()


@dataclass(frozen=True, slots=True)
class AccountConfig:
    id: str
    currency: str
    balance: int
    credit_limit: int = 0


@dataclass(frozen=True, slots=True)
class CardConfig:
    """A card on an issuer's file.

    ``pin``: the simulated cardholder's PIN, the stand-in for the issuer's PIN mailer data.
    Only the issuer reads it, once at start, to enrol a PIN verification value in its HSM
    (``issuer.crypto``); it is never logged (kept out of ``repr``) or stored.
    """

    pan: str
    expiry: str  # YYMM
    account: str
    status: str = "active"  # active | blocked | lost
    per_txn_limit: int | None = None  # minor units of the account's currency
    pin: str | None = field(default=None, repr=False)  # 4..12 digits; None: no PIN issued


@dataclass(frozen=True, slots=True)
class BinRange:
    low: str
    high: str

    def matches(self, pan: str) -> bool:
        head = pan[: len(self.low)]
        return len(head) == len(self.low) and self.low <= head <= self.high

    @property
    def width(self) -> int:
        return len(self.low)


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    id: str
    listen: str
    bins: tuple[BinRange, ...]
    accounts: tuple[AccountConfig, ...] = ()
    cards: tuple[CardConfig, ...] = ()
    latency: Latency = Latency()
    faults: Faults = Faults()
    hold_ttl_s: float = DEFAULT_HOLD_TTL_S  # an uncaptured hold expires after this
    # ARQC replay: ATCs this far below a card's highest are still accepted once (issuer.atc)
    atc_window: int = 32


@dataclass(frozen=True, slots=True)
class MerchantConfig:
    id: str
    name: str
    mcc: str
    acquirers: tuple[str, ...]
    # "" = the switch's ``follow_ups``; else "same_terminal" or "same_merchant".
    follow_ups: str = ""
    # ISO 3166 alpha-2 country of the merchant's premises ("" = unknown): risk signals.
    country: str = ""


@dataclass(frozen=True, slots=True)
class TerminalConfig:
    id: str
    merchant: str
    country: str = ""  # "" = its merchant's country


@dataclass(frozen=True, slots=True)
class Topology:
    switch: SwitchConfig
    acquirers: tuple[AcquirerConfig, ...]
    schemes: tuple[SchemeConfig, ...]
    issuers: tuple[IssuerConfig, ...]
    merchants: tuple[MerchantConfig, ...]
    terminals: tuple[TerminalConfig, ...]
    source: Path | None = field(default=None, compare=False)
    breaker: BreakerConfig = BreakerConfig()
    standin: StandInConfig = StandInConfig()
    saf: SafConfig = SafConfig()
    settlement: SettlementConfig = field(default_factory=SettlementConfig)
    fees: tuple[FeeConfig, ...] = ()
    network: NetworkConfig = NetworkConfig()
    risk: RiskConfig = RiskConfig()
    tracing: TracingConfig = TracingConfig()
    dcc_markup_bps: int = 0  # [fx]: the DCC offer's markup; 0 offers no DCC

    def acquirer(self, node_id: str) -> AcquirerConfig:
        return _find(self.acquirers, node_id, "acquirer")

    def scheme_node(self, node_id: str) -> SchemeConfig:
        return _find(self.schemes, node_id, "scheme")

    def issuer(self, node_id: str) -> IssuerConfig:
        return _find(self.issuers, node_id, "issuer")

    def merchant(self, merchant_id: str) -> MerchantConfig:
        return _find(self.merchants, merchant_id, "merchant")

    def terminal_countries(self) -> dict[str, str]:
        """Each terminal's country (its own, else its merchant's; "" unknown)."""
        merchants = {m.id: m.country for m in self.merchants}
        return {t.id: t.country or merchants.get(t.merchant, "") for t in self.terminals}

    def node_kind(self, node_id: str) -> str:
        """'acquirer', 'scheme' or 'issuer' for a network node id."""
        for kind, nodes in (
            ("acquirer", self.acquirers),
            ("scheme", self.schemes),
            ("issuer", self.issuers),
        ):
            if any(n.id == node_id for n in nodes):
                return kind
        raise TopologyError(f"no network node with id {node_id!r}")

    def scheme_for_brand(self, brand: Scheme) -> SchemeConfig | None:
        return next((s for s in self.schemes if brand in s.brands), None)

    def issuer_for_pan(
        self, pan: str, among: tuple[IssuerConfig, ...] | None = None
    ) -> IssuerConfig | None:
        """Longest matching BIN range wins."""
        best: tuple[int, IssuerConfig] | None = None
        for issuer in among if among is not None else self.issuers:
            for rng in issuer.bins:
                if rng.matches(pan) and (best is None or rng.width > best[0]):
                    best = (rng.width, issuer)
        return best[1] if best else None


def _rates(raw: Any, where: str) -> tuple[RateTable, ...]:
    try:
        return parse_tables(raw, where)
    except RatesError as exc:
        raise TopologyError(str(exc)) from None


def _settlement_currency(raw: dict[str, Any], where: str) -> str:
    value = raw.get("settlement_currency", "")
    if not isinstance(value, str) or (value and not is_currency(value)):
        raise TopologyError(f"{where}: settlement_currency must be an ISO 4217 code")
    return value


def _markup(doc: dict[str, Any]) -> int:
    try:
        return parse_markup(doc)
    except RatesError as exc:
        raise TopologyError(str(exc)) from None


def _find(items: Iterable[_E], node_id: str, what: str) -> _E:
    for item in items:
        if item.id == node_id:
            return item
    raise TopologyError(f"no {what} with id {node_id!r}")


def billing_currency(topology: Topology, pan: str) -> str | None:
    """The currency of the account a card bills, as the scheme's BIN tables know it."""
    issuer = topology.issuer_for_pan(pan)
    if issuer is None:
        return None
    card = next((c for c in issuer.cards if c.pan == pan), None)
    if card is None:
        return None
    account = next((a for a in issuer.accounts if a.id == card.account), None)
    return account.currency if account else None


def _rate(raw: dict[str, Any], key: str, where: str) -> float:
    value = float(raw.get(key, 0.0))
    if not 0.0 <= value <= 1.0:
        raise TopologyError(f"{where}: {key} must be between 0 and 1")
    return value


def _positive_int(raw: dict[str, Any], key: str, default: int, where: str) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise TopologyError(f"{where}: {key} must be a positive integer")
    return value


def _bool(raw: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise TopologyError(f"{where}: {key} must be true or false")
    return value


def _positive_number(raw: dict[str, Any], key: str, default: float, where: str) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise TopologyError(f"{where}: {key} must be a positive number")
    return float(value)


def _latency(raw: dict[str, Any] | None, where: str) -> Latency:
    if raw is None:
        return Latency()
    dist = raw.get("distribution", "fixed")
    if dist not in ("fixed", "uniform", "lognormal"):
        raise TopologyError(f"{where}: latency distribution must be fixed, uniform or lognormal")
    lat = Latency(
        distribution=dist,
        ms=float(raw.get("ms", 0.0)),
        min_ms=float(raw.get("min_ms", 0.0)),
        max_ms=float(raw.get("max_ms", 0.0)),
        median_ms=float(raw.get("median_ms", 0.0)),
        p99_ms=float(raw.get("p99_ms", 0.0)),
    )
    if dist == "uniform" and lat.max_ms < lat.min_ms:
        raise TopologyError(f"{where}: latency max_ms < min_ms")
    if dist == "lognormal" and not (0 < lat.median_ms <= lat.p99_ms):
        raise TopologyError(f"{where}: lognormal latency needs 0 < median_ms <= p99_ms")
    return lat


def _faults(raw: dict[str, Any], where: str) -> Faults:
    return Faults(
        error_rate=_rate(raw, "error_rate", where),
        timeout_rate=_rate(raw, "timeout_rate", where),
        drop_response_rate=_rate(raw, "drop_response_rate", where),
    )


def _schemes(values: list[str], where: str) -> tuple[Scheme, ...]:
    try:
        return tuple(Scheme(v) for v in values)
    except ValueError as exc:
        raise TopologyError(f"{where}: {exc}") from None


def _bin_range(text: str, where: str) -> BinRange:
    low, _, high = text.partition("-")
    high = high or low
    if not (low.isdigit() and high.isdigit() and len(low) == len(high) and low <= high):
        raise TopologyError(f"{where}: bad BIN range {text!r}")
    return BinRange(low, high)


_BREAKER_KEYS = frozenset(f.name for f in fields(BreakerConfig))
_STANDIN_KEYS = frozenset(f.name for f in fields(StandInConfig))
_RISK_KEYS = frozenset(f.name for f in fields(RiskConfig))


def _breaker(raw: dict[str, Any]) -> BreakerConfig:
    where = "breaker"
    unknown = set(raw) - _BREAKER_KEYS
    if unknown:
        raise TopologyError(f"{where}: unknown keys {sorted(unknown)}")
    d = BreakerConfig()
    rate = raw.get("error_rate", d.error_rate)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
        raise TopologyError(f"{where}: error_rate must be in (0, 1]")
    return BreakerConfig(
        failure_threshold=_positive_int(raw, "failure_threshold", d.failure_threshold, where),
        error_rate=float(rate),
        window_s=_positive_number(raw, "window_s", d.window_s, where),
        min_volume=_positive_int(raw, "min_volume", d.min_volume, where),
        open_s=_positive_number(raw, "open_s", d.open_s, where),
        half_open_probes=_positive_int(raw, "half_open_probes", d.half_open_probes, where),
        connect_timeout_ms=_positive_int(raw, "connect_timeout_ms", d.connect_timeout_ms, where),
    )


def _amounts(raw: dict[str, Any], key: str, where: str) -> tuple[tuple[str, int], ...]:
    table = raw.get(key, {})
    if not isinstance(table, dict):
        raise TopologyError(f"{where}: {key} must be a table of currency = minor units")
    out: list[tuple[str, int]] = []
    for currency, value in sorted(table.items()):
        if not is_currency(currency):
            raise TopologyError(f"{where}: {key}: unknown currency {currency!r}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise TopologyError(f"{where}: {key}.{currency} must be an integer >= 0 (minor units)")
        out.append((currency, value))
    return tuple(out)


def _strings(
    raw: dict[str, Any], key: str, where: str, check: Callable[[str], bool]
) -> tuple[str, ...]:
    values = raw.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, str) and check(v) for v in values):
        raise TopologyError(f"{where}: {key} has a malformed entry")
    return tuple(values)


def _mcc(value: str) -> bool:
    return len(value) == 4 and value.isdigit()


def _token(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _standin(raw: dict[str, Any]) -> StandInConfig:
    where = "standin"
    unknown = set(raw) - _STANDIN_KEYS
    if unknown:
        raise TopologyError(f"{where}: unknown keys {sorted(unknown)}")
    d = StandInConfig()
    enabled = raw.get("enabled", d.enabled)
    if not isinstance(enabled, bool):
        raise TopologyError(f"{where}: enabled must be true or false")
    bins = raw.get("negative_bins", [])
    if not isinstance(bins, list) or not all(isinstance(b, str) for b in bins):
        raise TopologyError(f"{where}: negative_bins must be a list of BIN ranges")
    return StandInConfig(
        enabled=enabled,
        floor=_amounts(raw, "floor", where),
        cumulative=_amounts(raw, "cumulative", where),
        window_s=_positive_int(raw, "window_s", d.window_s, where),
        allowed_mccs=_strings(raw, "allowed_mccs", where, _mcc),
        blocked_mccs=_strings(raw, "blocked_mccs", where, _mcc),
        negative_tokens=_strings(raw, "negative_tokens", where, _token),
        negative_bins=tuple(_bin_range(b, where) for b in bins),
        advice_interval_s=_positive_number(raw, "advice_interval_s", d.advice_interval_s, where),
        files_dir=_path(raw, "files_dir", d.files_dir, where),
        publish_interval_s=_positive_number(raw, "publish_interval_s", d.publish_interval_s, where),
        refresh_s=_positive_number(raw, "refresh_s", d.refresh_s, where),
        max_age_s=_positive_number(raw, "max_age_s", d.max_age_s, where),
    )


def _country(raw: dict[str, Any], where: str) -> str:
    value = raw.get("country", "")
    if not isinstance(value, str) or (value and not (len(value) == 2 and value.isupper())):
        raise TopologyError(f"{where}: country must be an ISO 3166 alpha-2 code such as DE")
    return value


def _risk(raw: dict[str, Any]) -> RiskConfig:
    where = "risk"
    unknown = set(raw) - _RISK_KEYS
    if unknown:
        raise TopologyError(f"{where}: unknown keys {sorted(unknown)}")
    d = RiskConfig()
    code = raw.get("fallback_code", d.fallback_code)
    if not isinstance(code, str) or len(code) != 2 or not code.isdigit() or code == "00":
        raise TopologyError(f"{where}: fallback_code must be a two-digit decline code")
    shadow = raw.get("shadow_rules", "")
    if not isinstance(shadow, str):
        raise TopologyError(f"{where}: shadow_rules must be a path or empty")
    return RiskConfig(
        enabled=_bool(raw, "enabled", d.enabled, where),
        rules=_path(raw, "rules", d.rules, where),
        shadow_rules=shadow,
        reload_s=_positive_number(raw, "reload_s", d.reload_s, where),
        slice_ms=_positive_int(raw, "slice_ms", d.slice_ms, where),
        fallback_floor=_amounts(raw, "fallback_floor", where),
        fallback_code=code,
        small=_amounts(raw, "small", where),
    )


def _path(raw: dict[str, Any], key: str, default: str, where: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        raise TopologyError(f"{where}: {key} must be a path")
    return value


def parse(doc: dict[str, Any], source: Path | None = None) -> Topology:
    """Build and cross-check a Topology from a parsed TOML document."""
    sw = doc.get("switch", {})
    switch = SwitchConfig(
        id=sw.get("id", "switch-1"),
        listen=sw.get("listen", "127.0.0.1:50051"),
        max_budget_ms=int(sw.get("max_budget_ms", 2000)),
        margin_ms=int(sw.get("margin_ms", 60)),
        max_in_flight=_positive_int(sw, "max_in_flight", 256, "switch"),
        admission=str(sw.get("admission", "adaptive")),
        limit_initial=_positive_int(sw, "limit_initial", 64, "switch"),
        limit_min=_positive_int(sw, "limit_min", 32, "switch"),
        limit_tolerance=_positive_number(sw, "limit_tolerance", 2.0, "switch"),
        limit_window_ms=_positive_int(sw, "limit_window_ms", 100, "switch"),
        queue_ms=_positive_int(sw, "queue_ms", 400, "switch"),
        background_share=_positive_number(sw, "background_share", 0.25, "switch"),
        terminal_rate_per_s=_positive_number(sw, "terminal_rate_per_s", 50.0, "switch"),
        terminal_burst=_positive_int(sw, "terminal_burst", 100, "switch"),
        tls=_bool(sw, "tls", False, "switch"),
        certs_dir=str(sw.get("certs_dir", "")),
        admin_listen=str(sw.get("admin_listen", "")),
        metrics_listen=str(sw.get("metrics_listen", "")),
        registry_refresh_s=_positive_number(sw, "registry_refresh_s", 1.0, "switch"),
        abandoned_key_s=_positive_number(sw, "abandoned_key_s", 60.0, "switch"),
        device_binding=str(sw.get("device_binding", "first-use")),
        local_time_window_s=_positive_number(sw, "local_time_window_s", 86400.0, "switch"),
        follow_ups=_follow_ups(sw, "same_terminal", "switch"),
    )
    if switch.admission not in ADMISSION_MODES:
        raise TopologyError(f"switch: admission must be one of {', '.join(ADMISSION_MODES)}")
    if switch.limit_tolerance < 1 or switch.background_share > 1:
        raise TopologyError(
            "switch: limit_tolerance must be at least 1 and background_share at most 1"
        )
    if switch.device_binding not in DEVICE_BINDINGS:
        raise TopologyError(f"switch: device_binding must be one of {', '.join(DEVICE_BINDINGS)}")
    if switch.abandoned_key_s < 3 * switch.max_budget_ms / 1000:
        raise TopologyError("switch: abandoned_key_s must be at least 3 x max_budget_ms")
    if switch.local_time_window_s < MIN_LOCAL_TIME_WINDOW_S:
        raise TopologyError(
            "switch: local_time_window_s must be at least 50400 (14 h: local_time has no zone)"
        )
    acquirers = tuple(
        AcquirerConfig(
            id=a["id"],
            listen=a["listen"],
            schemes=_schemes(a.get("schemes", []), f"acquirer {a['id']}"),
            latency=_latency(a.get("latency"), f"acquirer {a['id']}"),
            faults=_faults(a, f"acquirer {a['id']}"),
            margin_ms=int(a.get("margin_ms", 20)),
            timeout_ms=_positive_int(a, "timeout_ms", 2000, f"acquirer {a['id']}"),
            settlement_currency=_settlement_currency(a, f"acquirer {a['id']}"),
        )
        for a in doc.get("acquirers", [])
    )
    schemes = tuple(
        SchemeConfig(
            id=s["id"],
            listen=s["listen"],
            brands=_schemes(s.get("brands", []), f"scheme {s['id']}"),
            latency=_latency(s.get("latency"), f"scheme {s['id']}"),
            faults=_faults(s, f"scheme {s['id']}"),
            margin_ms=int(s.get("margin_ms", 20)),
            rates=_rates(s.get("rates"), f"scheme {s['id']}"),
        )
        for s in doc.get("schemes", [])
    )
    issuers = []
    for i in doc.get("issuers", []):
        where = f"issuer {i['id']}"
        accounts = tuple(
            AccountConfig(
                id=a["id"],
                currency=a["currency"],
                balance=int(a["balance"]),
                credit_limit=int(a.get("credit_limit", 0)),
            )
            for a in i.get("accounts", [])
        )
        for a in accounts:
            if not is_currency(a.currency):
                raise TopologyError(f"{where}: account {a.id}: unknown currency {a.currency!r}")
        account_ids = {a.id for a in accounts}
        cards = tuple(
            CardConfig(
                pan=c["pan"],
                expiry=c["expiry"],
                account=c["account"],
                status=c.get("status", "active"),
                per_txn_limit=int(c["per_txn_limit"]) if "per_txn_limit" in c else None,
                pin=str(c["pin"]) if "pin" in c else None,
            )
            for c in i.get("cards", [])
        )
        for n, c in enumerate(cards):
            if c.account not in account_ids:
                raise TopologyError(f"{where}: card #{n} names unknown account {c.account!r}")
            if c.status not in ("active", "blocked", "lost"):
                raise TopologyError(f"{where}: card #{n}: status must be active, blocked or lost")
            if not luhn_valid(c.pan):
                raise TopologyError(f"{where}: card #{n} fails the Luhn check")
            if c.pin is not None and not (
                4 <= len(c.pin) <= 12 and c.pin.isascii() and c.pin.isdigit()
            ):
                raise TopologyError(f"{where}: card #{n}: pin must be 4 to 12 digits")
            try:
                check_expiry(c.expiry)
            except CardError:
                raise TopologyError(f"{where}: card #{n}: expiry must be YYMM") from None
        issuers.append(
            IssuerConfig(
                id=i["id"],
                listen=i["listen"],
                bins=tuple(_bin_range(b, where) for b in i.get("bins", [])),
                accounts=accounts,
                cards=cards,
                latency=_latency(i.get("latency"), where),
                faults=_faults(i, where),
                hold_ttl_s=_settlement_key(parse_hold_ttl, i, where),
                atc_window=_atc_window(i, where),
            )
        )
    merchants = tuple(
        MerchantConfig(
            id=m["id"],
            name=m.get("name", m["id"]),
            mcc=m.get("mcc", "5999"),
            acquirers=tuple(m.get("acquirers", [])),
            follow_ups=_follow_ups(m, "", f"merchant {m['id']}"),
            country=_country(m, f"merchant {m['id']}"),
        )
        for m in doc.get("merchants", [])
    )
    terminals = tuple(
        TerminalConfig(
            id=t["id"], merchant=t["merchant"], country=_country(t, f"terminal {t['id']}")
        )
        for t in doc.get("terminals", [])
    )
    topo = Topology(
        switch,
        acquirers,
        schemes,
        tuple(issuers),
        merchants,
        terminals,
        source,
        breaker=_breaker(doc.get("breaker", {})),
        standin=_standin(doc.get("standin", {})),
        saf=_saf(doc.get("saf", {})),
        settlement=_settlement_key(parse_settlement, doc.get("settlement")),
        fees=_settlement_key(parse_fees, doc.get("fees")),
        network=NetworkConfig(tls=_bool(doc.get("network", {}), "tls", True, "network")),
        risk=_risk(doc.get("risk", {})),
        tracing=_tracing(doc.get("tracing", {})),
        dcc_markup_bps=_markup(doc),
    )
    _cross_check(topo)
    return topo


def _atc_window(raw: dict[str, Any], where: str) -> int:
    value = _positive_int(raw, "atc_window", 32, where)
    if value > 62:
        raise TopologyError(f"{where}: atc_window must be 1..62")
    return value


def _settlement_key(parser: Callable[[*_Args], _T], *args: *_Args) -> _T:
    try:
        return parser(*args)
    except SettlementConfigError as exc:
        raise TopologyError(str(exc)) from None


def _cross_check(topo: Topology) -> None:
    # The switch's id is a process name too (the launcher names logs and children by id).
    nodes: tuple[_Node, ...] = (topo.switch, *topo.acquirers, *topo.schemes, *topo.issuers)
    ids = [n.id for n in nodes]
    dupes = {x for x in ids if ids.count(x) > 1}
    if dupes:
        raise TopologyError(f"duplicate node ids: {sorted(dupes)}")
    listens = [n.listen for n in nodes]
    shared = {x for x in listens if listens.count(x) > 1}
    if shared:
        raise TopologyError(f"listen addresses used by more than one node: {sorted(shared)}")
    acq_ids = {a.id for a in topo.acquirers}
    for m in topo.merchants:
        missing = [a for a in m.acquirers if a not in acq_ids]
        if missing:
            raise TopologyError(f"merchant {m.id}: unknown acquirers {missing}")
    merchant_ids = {m.id for m in topo.merchants}
    for t in topo.terminals:
        if t.merchant not in merchant_ids:
            raise TopologyError(f"terminal {t.id}: unknown merchant {t.merchant!r}")
    for a in topo.acquirers:
        for brand in a.schemes:
            if topo.scheme_for_brand(brand) is None:
                raise TopologyError(f"acquirer {a.id}: no scheme node carries {brand.value}")


def load(path: str | Path) -> Topology:
    path = Path(path)
    with path.open("rb") as fh:
        try:
            doc = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise TopologyError(f"{path}: {exc}") from None
    try:
        return parse(doc, path)
    except KeyError as exc:
        raise TopologyError(f"{path}: missing key {exc}") from None


def network_identities(topo: Topology) -> list[tuple[str, str]]:
    """(kind, id) of every process with a network certificate: the switch and every node."""
    return [("switch", topo.switch.id), *((k, i) for k, i, _ in all_nodes(topo))]


def all_nodes(topo: Topology) -> list[tuple[str, str, str]]:
    """(kind, id, listen) of every network node, issuers first so callers start them first."""
    return (
        [("issuer", i.id, i.listen) for i in topo.issuers]
        + [("scheme", s.id, s.listen) for s in topo.schemes]
        + [("acquirer", a.id, a.listen) for a in topo.acquirers]
    )
