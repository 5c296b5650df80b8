"""Tracing's parts on their own: what a hostile ``traceparent`` gets, card-safe ids, the span
file (owner-only, attributes by allow-list, rotation), the ``[tracing]`` topology keys, the
store wrapper (every interface method, one span each inside a recorded trace, none outside),
and the log lines' trace ids."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from payswitch import tracing
from payswitch.world.topology import TopologyError, parse
from switch.store.base import Store
from switch.store.traced import traced

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
TOPOLOGY = Path(__file__).resolve().parents[2] / "topology" / "default.toml"


def _parent(header: str, **extra: str):
    ctx = tracing.PROPAGATOR.extract({"traceparent": header, **extra})
    return trace.get_current_span(ctx).get_span_context()


def test_a_well_formed_traceparent_is_continued():
    sc = _parent(f"00-{TRACE}-{SPAN}-01")
    assert sc.is_valid and f"{sc.trace_id:032x}" == TRACE and f"{sc.span_id:016x}" == SPAN
    assert sc.trace_flags.sampled


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        f"00-{TRACE}-{SPAN}",  # no flags
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
        f"ff-{TRACE}-{SPAN}-01",  # forbidden version
        "00-00000000000000004111111111111111-00f067aa0ba902b7-01",  # a PAN as the trace id
        f"00-{TRACE}-0005555555554444-01",  # a PAN-shaped run in the span id
    ],
)
def test_a_malformed_or_card_shaped_traceparent_starts_a_new_trace(header):
    assert not _parent(header).is_valid


def test_tracestate_is_dropped():
    sc = _parent(f"00-{TRACE}-{SPAN}-01", tracestate="vendor=4111111111111111")
    assert sc.is_valid and len(sc.trace_state) == 0


def test_our_ids_never_look_like_a_card_number():
    ids = tracing.CardSafeIds()
    for _ in range(20_000):
        assert not tracing.card_shaped(f"{ids.generate_trace_id():032x}")
        assert not tracing.card_shaped(f"{ids.generate_span_id():016x}")


def _provider(tmp_path: Path, **kw) -> TracerProvider:
    return tracing.provider("unit", tmp_path / "traces", 1.0, **kw)


def test_span_file_is_owner_only_and_keeps_allowed_attributes_only(tmp_path):
    tp = _provider(tmp_path)
    tracer = tp.get_tracer("t")
    with tracer.start_as_current_span("root", attributes={"payswitch.rrn": "000000000042"}):
        with tracer.start_as_current_span("leaf") as leaf:
            leaf.set_attribute("pan", "4111111111111111")  # a careless attribute
            leaf.set_attribute("rpc.grpc.status_code", 0)
            leaf.add_event("oops", {"card": "4111111111111111"})
            leaf.set_status(trace.Status(trace.StatusCode.ERROR, "card 4111111111111111"))
    tp.shutdown()
    [path] = (tmp_path / "traces").iterdir()
    assert (tmp_path / "traces").stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o777 == 0o600
    raw = path.read_text()
    assert "4111111111111111" not in raw
    leaf_rec, root_rec = (json.loads(line) for line in raw.splitlines())
    assert root_rec["attrs"] == {"payswitch.rrn": "000000000042"}
    assert leaf_rec["attrs"] == {"rpc.grpc.status_code": 0}
    assert leaf_rec["parent_id"] == root_rec["span_id"] and root_rec["parent_id"] is None
    assert leaf_rec["status"] == "error" and leaf_rec["service"] == "unit"


def test_span_file_rotates_past_its_bound(tmp_path):
    exporter = tracing.SpanFile(tmp_path / "t" / "x.jsonl", max_bytes=2000)
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    for i in range(40):
        with tp.get_tracer("t").start_as_current_span(f"s{i}"):
            pass
    tp.shutdown()
    assert (tmp_path / "t" / "x.jsonl").stat().st_size <= 2000
    assert (tmp_path / "t" / "x.jsonl.1").stat().st_size <= 2000


def test_sampling_ratio_is_parent_based(tmp_path):
    tp = tracing.provider("unit", tmp_path, 0.0)
    tracer = tp.get_tracer("t")
    with tracer.start_as_current_span("root") as root:
        assert not root.is_recording()  # a root at ratio 0 is never sampled
    sampled = trace.set_span_in_context(
        trace.NonRecordingSpan(
            trace.SpanContext(
                int(TRACE, 16), int(SPAN, 16), True, trace.TraceFlags(trace.TraceFlags.SAMPLED)
            )
        )
    )
    with tracer.start_as_current_span("child", context=sampled) as child:
        assert child.is_recording()  # ... but a sampled caller's trace is followed
    tp.shutdown()


def _topology(extra: dict) -> dict:
    doc = tomllib.loads(TOPOLOGY.read_text())
    doc["tracing"] = extra
    return doc


def test_tracing_topology_keys():
    assert not parse(tomllib.loads(TOPOLOGY.read_text()), None).tracing.enabled
    cfg = parse(_topology({"enabled": True, "sample_ratio": 0.25, "max_file_mb": 8}), None).tracing
    assert (cfg.enabled, cfg.sample_ratio, cfg.max_file_mb) == (True, 0.25, 8)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"sample_ratio": 1.5}, "sample_ratio"),
        ({"sample_ratio": -0.1}, "sample_ratio"),
        ({"sample_ratio": True}, "sample_ratio"),
        ({"enabled": "yes"}, "enabled"),
        ({"max_file_mb": 0}, "max_file_mb"),
        ({"sampling": 0.5}, "unknown"),
        ({"otlp_endpoint": 4317}, "otlp_endpoint"),
    ],
)
def test_bad_tracing_keys_are_refused_naming_them(raw, words):
    with pytest.raises(TopologyError, match=words):
        parse(_topology(raw), None)


def test_off_adds_nothing():
    assert not tracing.enabled()
    assert tracing.server_interceptors() == [] and tracing.client_interceptors() == []
    assert tracing.child("x") is tracing.child("y")  # one shared null context


class _Inner:
    """Answers every Store method by name (a fake: this tests the wrapper only)."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        async def call(*args, **kwargs):
            self.calls.append(name)
            return name

        return call


def test_traced_store_covers_the_whole_interface():
    wrapped = traced(_Inner())  # type: ignore[arg-type]
    assert isinstance(wrapped, Store)
    assert not getattr(type(wrapped), "__abstractmethods__", None)
    public = [
        n
        for n, v in inspect.getmembers(Store)
        if not n.startswith("_") and inspect.iscoroutinefunction(v)
    ]
    assert "claim_idempotency" in public and "record_with_answer" in public


async def test_traced_store_makes_a_span_per_call_only_inside_a_recorded_trace(monkeypatch):
    memory = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(memory))
    monkeypatch.setattr(tracing, "_tracer", tp.get_tracer("t"))
    monkeypatch.setattr(tracing, "_on", True)
    inner = _Inner()
    store = traced(inner)  # type: ignore[arg-type]
    assert await store.get_transaction("t1") == "get_transaction"  # no trace: no span
    with tp.get_tracer("t").start_as_current_span("authorize"):
        await store.claim_idempotency("s", "k", "authorize", b"f", 60.0, 0.0)
        await store.record_with_answer("t1", None, None, None, None)  # type: ignore[arg-type]
    names = [s.name for s in memory.get_finished_spans()]
    assert names == ["store claim_idempotency", "store record_with_answer", "authorize"]
    assert inner.calls == ["get_transaction", "claim_idempotency", "record_with_answer"]


LOG_CODE = """
from opentelemetry import trace
from payswitch import logs, tracing
logs.configure("n")
tp = tracing.provider("n", {dir!r}, 1.0)
log = logs.get("x")
log.info("outside")
with tp.get_tracer("t").start_as_current_span("s") as s:
    c = s.get_span_context()
    log.info("inside", pan="4111111111111111")
    print("IDS", format(c.trace_id, "032x"), format(c.span_id, "016x"))
"""


def test_log_lines_carry_the_current_trace_and_span_ids(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", LOG_CODE.format(dir=str(tmp_path))],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    outside, inside = (json.loads(line) for line in out[:2])
    _, trace_id, span_id = out[2].split()
    assert "trace_id" not in outside
    assert inside["trace_id"] == trace_id and inside["span_id"] == span_id
    assert inside["pan"] == "411111******1111"  # the masker still runs


def test_otlp_endpoint_gets_the_spans_too(tmp_path):
    """A real HTTP server on loopback stands in for the collector: the spans arrive there as
    OTLP JSON, and in the file as well."""
    import http.server
    import threading

    bodies: list[bytes] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1/traces"
        tp = _provider(tmp_path, otlp_endpoint=url)
        with tp.get_tracer("t").start_as_current_span("authorize"):
            pass
        tp.shutdown()
    finally:
        server.shutdown()
    assert bodies and b"authorize" in b"".join(bodies)
    assert "authorize" in next((tmp_path / "traces").iterdir()).read_text()


def test_otlp_without_its_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.json.http.trace_exporter", None)
    with pytest.raises(tracing.TracingError, match="otlp"):
        tracing.otlp_exporter("http://127.0.0.1:1/v1/traces")
