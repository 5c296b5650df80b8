"""Distributed tracing: W3C trace context on every hop, spans written as JSON lines per process.

Off by default (``[tracing] enabled = false``): no tracer provider is installed, no
interceptor is added to any server or channel, and ``child`` hands back one shared null context,
so an authorization pays a flag test per stage and nothing else. On, every process (switch,
acquirers, schemes, issuers; a terminal SDK given a provider) writes its spans to
``<dir>/<service>-<pid>.jsonl`` (owner-only, like the logs; ``PAYSWITCH_TRACE_DIR``, which
``payswitch-stack`` sets to ``<run-dir>/traces``, overrides ``[tracing] dir``), and OTLP too
when ``otlp_endpoint`` names a collector (OTLP/HTTP JSON; the ``otlp`` extra). Sampling is
parent-based with a ratio (``sample_ratio``): a trace is sampled, or not, at its root, and every
hop follows its caller's decision, so a trace is whole or absent.

Why our own thin grpc.aio interceptors (``ServerSpans``, ``ClientSpans``) rather than
``opentelemetry-instrumentation-grpc`` 0.66b2: that one works with grpc.aio here (its open
upstream issue on aio cancellation, #3271, did not reproduce with grpcio 1.85: a call timed
out by ``asyncio.wait_for`` or cancelled raises as it should; checked by hand), but it records
exception events and the peer's error text on spans (an OTLP collector would get them
unfiltered), adds the peer's address and user agent, extracts with the global propagator
(baggage included) rather than our edge rules below, and brings three beta packages pinned to
one another. Ours keep a span to ids, names, times and status codes, and change nothing the
caller sees: errors and cancellation reach it as without them (``tests/unit/
test_tracing_grpc.py``).

What a hostile caller can do with the ``traceparent`` it sends (the terminal port is the only
one open to parties outside the network): a malformed header is ignored (a new trace starts,
as W3C says); ``tracestate`` is dropped; a trace or span id with a run of 13 or more decimal
digits (the shape the log masker treats as a card number) is refused the same way, so no
caller can put a PAN-shaped string into logs or span files; our own ids never have one
(``CardSafeIds``). A terminal can ask for its own requests to be sampled; that costs what
``sample_ratio = 1`` costs (``benchmarks/trace_cost.py``), within its rate allowance, and span
files rotate at ``max_file_mb``.

No span carries card data: names are RPC methods, stage names, ``hsm <job>`` and
``store <method>``; attributes are ids, codes and durations, and the file exporter writes only
``payswitch.*`` and ``rpc.*`` attributes whatever code sets.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import grpc
import orjson
from opentelemetry import trace
from opentelemetry.context import Context, get_current
from opentelemetry.propagators.textmap import CarrierT, Getter, default_getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from payswitch.process import open_private_log
from payswitch.world.topology import TracingConfig

TRACE_DIR_ENV = "PAYSWITCH_TRACE_DIR"
SPAN_FILE_GLOB = "*.jsonl*"
ATTR_PREFIX = "payswitch."
RPC_ATTRS = frozenset({"rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code"})
STATUS_ATTR = "rpc.grpc.status_code"

# The log masker's card number: a run of 13 to 19 digits. No id of ours contains 13 in a row.
_CARD_RUN = re.compile(r"\d{13}")

_tracer = trace.get_tracer("payswitch")
_on = False
_NULL: contextlib.nullcontext[None] = contextlib.nullcontext()


class TracingError(RuntimeError):
    """Tracing is configured but cannot run (OTLP asked for and not installed)."""


def card_shaped(hex_id: str) -> bool:
    """True when ``hex_id`` holds a run of 13 decimal digits (a PAN to the log masker)."""
    return _CARD_RUN.search(hex_id) is not None


class CardSafeIds(RandomIdGenerator):
    """Random ids without a 13-digit decimal run: the log masker never rewrites one (about 4 %
    of random trace ids would be), so a trace id in a log line always matches its spans."""

    def generate_span_id(self) -> int:
        while True:
            value = random.getrandbits(64)
            if value and not card_shaped(f"{value:016x}"):
                return value

    def generate_trace_id(self) -> int:
        while True:
            value = random.getrandbits(128)
            if value and not card_shaped(f"{value:032x}"):
                return value


class EdgeTraceContext(TraceContextTextMapPropagator):
    """W3C ``traceparent`` only: ``tracestate`` is dropped, card-shaped ids are refused."""

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        base = context if context is not None else get_current()
        found = super().extract(carrier, context, getter)
        sc = trace.get_current_span(found).get_span_context()
        if not sc.is_valid or not sc.is_remote:
            return base
        if card_shaped(f"{sc.trace_id:032x}") or card_shaped(f"{sc.span_id:016x}"):
            return base
        if len(sc.trace_state):
            plain = SpanContext(sc.trace_id, sc.span_id, is_remote=True, trace_flags=sc.trace_flags)
            return trace.set_span_in_context(NonRecordingSpan(plain), base)
        return found


PROPAGATOR = EdgeTraceContext()


# -- the span file -------------------------------------------------------------------------------


def record(span: ReadableSpan) -> dict[str, Any]:
    """One span as the file keeps it: ids, name, kind, process, times, status and the
    ``payswitch.*`` and ``rpc.*`` attributes; never events, links or status descriptions."""
    ctx = span.context
    assert ctx is not None
    parent = span.parent
    attrs = {
        k: v
        for k, v in (span.attributes or {}).items()
        if k.startswith(ATTR_PREFIX) or k in RPC_ATTRS
    }
    resource = span.resource.attributes
    return {
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
        "name": span.name,
        "kind": span.kind.name.lower(),
        "service": str(resource.get("service.name", "")),
        "pid": resource.get("process.pid"),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name.lower(),
        "attrs": attrs,
    }


class SpanFile(SpanExporter):
    """JSON lines, one span a line, appended to a file created 0600 in a 0700 folder; past
    ``max_bytes`` the file moves to ``<name>.1`` (the one before is dropped). Runs on the batch
    processor's thread, never on the event loop."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self._max = max_bytes
        self._lock = threading.Lock()
        self._fh: BinaryIO | None = None
        self._size = 0

    def _open(self) -> BinaryIO:
        folder = self.path.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        fh = open_private_log(self.path)
        self._size = self.path.stat().st_size
        return fh

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = b"".join(orjson.dumps(record(s)) + b"\n" for s in spans)
        try:
            with self._lock:
                if self._fh is not None and self._size + len(data) > self._max:
                    self._fh.close()
                    self._fh = None
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                if self._fh is None:
                    self._fh = self._open()
                self._fh.write(data)
                self._size += len(data)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # every export is written unbuffered


def otlp_exporter(endpoint: str) -> SpanExporter:
    """The OTLP exporter to ``endpoint``, a full URL (``http://host:4318/v1/traces``): OTLP over
    HTTP with the JSON encoding, because the protobuf encoding's package pins protobuf below the
    major version our generated code needs (the ``otlp`` extra; in the dev install)."""
    try:
        from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise TracingError(
            "[tracing] otlp_endpoint is set but the OTLP exporter is not installed "
            "(pip install 'payswitch[otlp]')"
        ) from exc
    exporter: SpanExporter = OTLPSpanExporter(endpoint=endpoint, timeout=2.0)
    return exporter


def provider(
    service: str,
    directory: str | Path,
    ratio: float,
    *,
    otlp_endpoint: str = "",
    max_file_mb: int = 256,
) -> TracerProvider:
    """A tracer provider writing ``service``'s spans to ``<directory>/<service>-<pid>.jsonl``
    (and to OTLP when ``otlp_endpoint``), sampling roots at ``ratio``."""
    pid = os.getpid()
    tp = TracerProvider(
        resource=Resource.create({"service.name": service, "process.pid": pid}),
        sampler=ParentBased(TraceIdRatioBased(ratio)),
        id_generator=CardSafeIds(),
    )
    path = Path(directory) / f"{service}-{pid}.jsonl"
    tp.add_span_processor(
        BatchSpanProcessor(
            SpanFile(path, max_file_mb * 1024 * 1024),
            max_queue_size=16_384,
            schedule_delay_millis=500,
            max_export_batch_size=1024,
        )
    )
    if otlp_endpoint:
        tp.add_span_processor(BatchSpanProcessor(otlp_exporter(otlp_endpoint)))
    return tp


def install(service: str, config: TracingConfig) -> TracerProvider | None:
    """A server process's tracing from its topology's ``[tracing]``: the global provider and
    this module's interceptors; None (and nothing installed) when tracing is off."""
    global _on
    if not config.enabled:
        return None
    directory = os.environ.get(TRACE_DIR_ENV) or config.dir
    tp = provider(
        service,
        directory,
        config.sample_ratio,
        otlp_endpoint=config.otlp_endpoint,
        max_file_mb=config.max_file_mb,
    )
    trace.set_tracer_provider(tp)  # flushed and closed at exit (shutdown_on_exit)
    _on = True
    return tp


def enabled() -> bool:
    return _on


# -- spans inside a process ----------------------------------------------------------------------


def child(name: str) -> contextlib.AbstractContextManager[Any]:
    """A span named ``name`` under the current one when that is being recorded; otherwise a
    shared null context (tracing off, or a trace sampled out: nothing is made)."""
    if not _on or not trace.get_current_span().is_recording():
        return _NULL
    return _tracer.start_as_current_span(name, record_exception=False)


def annotate(attrs: Mapping[str, str | int]) -> None:
    """Ids and codes on the current span, when it is being recorded."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(attrs)


def _set_code(span: Span, code: grpc.StatusCode) -> None:
    span.set_attribute(STATUS_ATTR, code.value[0])
    if code is not grpc.StatusCode.OK:
        span.set_status(Status(StatusCode.ERROR))


def _carrier(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    return {k: v for k, v in metadata or () if k == "traceparent" and isinstance(v, str)}


def _rpc_attrs(method: str) -> dict[str, str]:
    service, _, rpc = method.lstrip("/").partition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc}


Unary = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class ServerSpans(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """A SERVER span for every unary ``payswitch.*`` call, continuing the caller's trace
    (``EdgeTraceContext``). Health and reflection are left alone."""

    def __init__(self, tracer: trace.Tracer | None = None) -> None:
        self._tracer = tracer or _tracer

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or handler.unary_unary is None or not method.startswith("/payswitch."):
            return handler
        inner: Unary = handler.unary_unary
        tracer = self._tracer
        attributes = _rpc_attrs(method)

        async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
            parent = PROPAGATOR.extract(_carrier(context.invocation_metadata()))
            with tracer.start_as_current_span(
                method,
                context=parent,
                kind=SpanKind.SERVER,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    response = await inner(request, context)
                except asyncio.CancelledError:
                    _set_code(span, grpc.StatusCode.CANCELLED)
                    raise
                except BaseException:
                    _set_code(span, context.code() or grpc.StatusCode.UNKNOWN)
                    raise
                _set_code(span, context.code() or grpc.StatusCode.OK)
                return response

        return grpc.unary_unary_rpc_method_handler(
            traced,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _with_trace(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    for key, value in carrier.items():
        metadata[key] = value
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


class ClientSpans(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """A CLIENT span per unary call made inside a recorded trace, its context sent as
    ``traceparent``; inside a trace sampled out only the context is sent (the callee follows
    the decision); outside any trace the call goes as it is. The caller sees the call exactly
    as without it: errors when it awaits the call, cancellation as cancellation."""

    def __init__(self, tracer: trace.Tracer | None = None) -> None:
        self._tracer = tracer or _tracer

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        current = trace.get_current_span()
        if not current.get_span_context().is_valid:
            return await continuation(details, request)
        if not current.is_recording():
            return await continuation(_with_trace(details), request)
        method = details.method
        name = method.decode() if isinstance(method, bytes) else str(method)
        with self._tracer.start_as_current_span(
            name,
            kind=SpanKind.CLIENT,
            attributes=_rpc_attrs(name),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            call = await continuation(_with_trace(details), request)
            try:
                await call
            except grpc.aio.AioRpcError as exc:
                _set_code(span, exc.code())
                return call  # the caller meets the same error when it awaits the call
            except asyncio.CancelledError:
                _set_code(span, grpc.StatusCode.CANCELLED)
                raise
            _set_code(span, grpc.StatusCode.OK)
            return call


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """What a server adds to its interceptors: nothing when tracing is off."""
    return [ServerSpans()] if _on else []


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """What a channel adds: nothing when tracing is off."""
    return [ClientSpans()] if _on else []
