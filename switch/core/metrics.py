"""Prometheus metrics of one switch process, served on an HTTP port (``[switch] metrics_listen``).

One registry per process (not prometheus_client's global one, so in-process tests can build
several switches without "duplicated timeseries" errors: ``reset()`` starts a new one). The
names are the operator's contract; keep them stable:

- ``payswitch_requests_total{rpc,code}``: terminal RPCs answered, by ISO 8583 response code
  (or the gRPC status name for API errors such as INVALID_ARGUMENT).
- ``payswitch_stage_seconds{stage}``: time spent in each pipeline stage.
- ``payswitch_hop_seconds{acquirer,rpc,outcome}``: each call to an acquirer connector
  (outcome: answered, unknown, refused).
- ``payswitch_circuit_state{acquirer}``: 0 closed, 1 half-open, 2 open.
- ``payswitch_saf_depth{kind}`` / ``payswitch_dlq_depth{kind}``: store-and-forward items waiting,
  and dead letters waiting for an operator.
- ``payswitch_standin_total{outcome}`` and ``payswitch_standin_amount_minor_total{currency}``:
  stand-in decisions and approved amounts in minor units.
- ``payswitch_standin_file_published_seconds{issuer}``: when the issuer's stand-in file the
  switch uses was published (Unix seconds; its age is ``time() - value``, refused past
  ``[standin] max_age_s``).
- ``payswitch_shed_total{reason}``: requests refused by load shedding (``expected_wait``,
  ``queue_timeout``, ``in_flight`` in fixed mode, ``terminal_rate``).
- ``payswitch_concurrency_limit``, ``payswitch_in_flight{kind}`` (``terminal``, ``background``),
  ``payswitch_admission_queue``, ``payswitch_admission_rtt_seconds{which}`` (``min``,
  ``recent``): the adaptive concurrency limit and what it is computed from
  (``switch.core.concurrency``).
- ``payswitch_risk_decisions_total{ruleset,action}``: risk decisions, by the live rule set
  (``ruleset="live"``) and by the shadow set beside it (``"shadow"``: never acted on).
- ``payswitch_risk_rule_hits_total{ruleset,rule}`` and ``payswitch_risk_rule_seconds{rule}``:
  each rule's hits and its evaluation time (the live set's; the time on one assessment in
  ``RULE_TIMING_EVERY`` = 8, the hits on every one).
- ``payswitch_risk_fallback_total{reason,outcome}``: decisions taken by the fallback because
  the store did not answer within the stage's slice (``timeout``) or failed (``store``).
- ``payswitch_risk_reloads_total{ruleset,outcome}``: rule files loaded or refused.
- ``payswitch_store_statements_total{backend,kind}``: statements sent to the state store
  (``switch.store.statements``: Cassandra lwt, serial, batch, read, write; SQLite commit, write).

No label ever holds card data: labels are RPC names, codes, stage names, acquirer ids,
currencies and fixed reasons.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from switch.store import statements

# Latency buckets around the 2 s card-network budget, fine below 100 ms where the switch lives.
_BUCKETS = (0.0005, 0.001, 0.002, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)

CIRCUIT_CLOSED, CIRCUIT_HALF_OPEN, CIRCUIT_OPEN = 0, 1, 2


class _StoreStatements(Collector):
    """``payswitch_store_statements_total``, read from the store's process-wide counts."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "payswitch_store_statements",
            "State store statements sent, by backend and kind",
            labels=["backend", "kind"],
        )
        for (backend, kind), n in sorted(statements.snapshot().items()):
            family.add_metric([backend, kind], n)
        yield family


class Metrics:
    """Every metric of the switch, bound to one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        r.register(_StoreStatements())
        self.requests = Counter(
            "payswitch_requests", "Terminal RPCs answered", ["rpc", "code"], registry=r
        )
        self.stage_seconds = Histogram(
            "payswitch_stage_seconds",
            "Pipeline stage time",
            ["stage"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.hop_seconds = Histogram(
            "payswitch_hop_seconds",
            "Acquirer connector call time",
            ["acquirer", "rpc", "outcome"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.circuit_state = Gauge(
            "payswitch_circuit_state", "0 closed, 1 half-open, 2 open", ["acquirer"], registry=r
        )
        self.saf_depth = Gauge(
            "payswitch_saf_depth", "Store-and-forward items waiting", ["kind"], registry=r
        )
        self.dlq_depth = Gauge("payswitch_dlq_depth", "Dead letters waiting", ["kind"], registry=r)
        self.standin = Counter("payswitch_standin", "Stand-in decisions", ["outcome"], registry=r)
        self.standin_amount = Counter(
            "payswitch_standin_amount_minor",
            "Stand-in approved amounts, minor units",
            ["currency"],
            registry=r,
        )
        self.standin_file = Gauge(
            "payswitch_standin_file_published_seconds",
            "Publication time of the issuer's stand-in file in use",
            ["issuer"],
            registry=r,
        )
        self.shed = Counter(
            "payswitch_shed", "Requests refused by load shedding", ["reason"], registry=r
        )
        self.concurrency_limit = Gauge(
            "payswitch_concurrency_limit", "Terminal RPCs one process works on at once", registry=r
        )
        self.in_flight = Gauge(
            "payswitch_in_flight", "Requests being worked on", ["kind"], registry=r
        )
        self.admission_queue = Gauge(
            "payswitch_admission_queue", "Terminal RPCs waiting for a slot", registry=r
        )
        self.admission_rtt = Gauge(
            "payswitch_admission_rtt_seconds",
            "The switch's own time per authorization the limit follows",
            ["which"],
            registry=r,
        )
        self.rekey = Counter(
            "payswitch_dukpt_rekey_signalled",
            "Answers telling a terminal to load a new DUKPT key (counter near exhaustion)",
            ["operation"],
            registry=r,
        )
        self.risk_decisions = Counter(
            "payswitch_risk_decisions", "Risk decisions", ["ruleset", "action"], registry=r
        )
        self.risk_rule_hits = Counter(
            "payswitch_risk_rule_hits", "Risk rules that held", ["ruleset", "rule"], registry=r
        )
        self.risk_rule_seconds = Histogram(
            "payswitch_risk_rule_seconds",
            "Risk rule evaluation time",
            ["rule"],
            buckets=(0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.001, 0.01),
            registry=r,
        )
        self.risk_fallback = Counter(
            "payswitch_risk_fallback",
            "Risk decisions taken by the fallback",
            ["reason", "outcome"],
            registry=r,
        )
        self.risk_reloads = Counter(
            "payswitch_risk_reloads", "Risk rule files loaded", ["ruleset", "outcome"], registry=r
        )
        self.response_mac_failed = Counter(
            "payswitch_response_mac_failed",
            "Answers sent without a response MAC because the HSM could not compute it",
            ["operation"],
            registry=r,
        )


METRICS = Metrics()


def reset() -> Metrics:
    """A fresh registry (tests); returns the new module-level ``METRICS``."""
    global METRICS
    METRICS = Metrics()
    return METRICS


def get() -> Metrics:
    return METRICS


def serve(host: str, port: int) -> None:
    """Serve /metrics for this process's registry on host:port (a daemon thread)."""
    start_http_server(port, addr=host, registry=METRICS.registry)
