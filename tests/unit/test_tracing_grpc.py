"""The tracing interceptors on a real grpc.aio server and channel over loopback: the callee's
span is the caller's child; errors and cancellation reach the caller exactly as without the
interceptor; a hostile or malformed ``traceparent`` starts a new trace at the server."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from payswitch import tracing

SERVICE = "payswitch.test.Probe"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


class World:
    def __init__(self) -> None:
        self.memory = InMemorySpanExporter()
        self.tp = TracerProvider(id_generator=tracing.CardSafeIds())
        self.tp.add_span_processor(SimpleSpanProcessor(self.memory))
        self.tracer = self.tp.get_tracer("t")
        self.release = asyncio.Event()

    async def say(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if request == b"bad":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request: bad")
        if request == b"hang":
            await self.release.wait()
        return b"echo:" + request

    def spans(self, name: str, kind: trace.SpanKind) -> list:
        return [s for s in self.memory.get_finished_spans() if s.name == name and s.kind == kind]


METHOD = f"/{SERVICE}/Say"


@pytest.fixture
async def world():
    w = World()
    server = grpc.aio.server(interceptors=[tracing.ServerSpans(w.tracer)])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {"Say": grpc.unary_unary_rpc_method_handler(w.say)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    traced = grpc.aio.insecure_channel(
        f"127.0.0.1:{port}", interceptors=[tracing.ClientSpans(w.tracer)]
    )
    plain = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    w.call = traced.unary_unary(METHOD)
    w.raw = plain.unary_unary(METHOD)
    yield w
    w.release.set()
    await traced.close()
    await plain.close()
    await server.stop(0)


async def test_the_callee_span_is_the_callers_child(world):
    with world.tracer.start_as_current_span("terminal.pay") as root:
        assert await world.call(b"hi", timeout=5) == b"echo:hi"
    [client] = world.spans(METHOD, trace.SpanKind.CLIENT)
    [server] = world.spans(METHOD, trace.SpanKind.SERVER)
    assert client.parent.span_id == root.get_span_context().span_id
    assert server.parent.span_id == client.context.span_id
    assert server.context.trace_id == root.get_span_context().trace_id
    assert server.attributes["rpc.grpc.status_code"] == 0
    assert server.attributes["rpc.service"] == SERVICE


async def test_an_error_reaches_the_caller_unchanged_and_marks_both_spans(world):
    with world.tracer.start_as_current_span("root"), pytest.raises(grpc.aio.AioRpcError) as err:
        await world.call(b"bad", timeout=5)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "request: bad"
    for kind in (trace.SpanKind.CLIENT, trace.SpanKind.SERVER):
        [span] = world.spans(METHOD, kind)
        assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert span.status.status_code is trace.StatusCode.ERROR


async def test_a_cancelled_caller_is_cancelled(world):
    """``asyncio.wait_for`` around a traced call times out as it does around a plain one (the
    store-and-forward worker bounds each reversal so)."""
    with world.tracer.start_as_current_span("root"):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(world.call(b"hang", timeout=5), 0.2)
    [client] = world.spans(METHOD, trace.SpanKind.CLIENT)
    assert client.attributes["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]


async def test_outside_a_trace_the_call_goes_as_it_is(world):
    assert await world.call(b"x", timeout=5) == b"echo:x"
    assert world.spans(METHOD, trace.SpanKind.CLIENT) == []
    [server] = world.spans(METHOD, trace.SpanKind.SERVER)
    assert server.parent is None  # the server starts the trace (sampled by its ratio)


@pytest.mark.parametrize(
    ("header", "continued"),
    [
        (f"00-{TRACE}-00f067aa0ba902b7-01", True),
        ("00-00000000000000004111111111111111-00f067aa0ba902b7-01", False),
        (f"00-{TRACE}-0005555555554444-01", False),
        ("not a traceparent", False),
        (f"00-{TRACE}-00f067aa0ba902b7", False),
    ],
)
async def test_the_server_continues_only_a_well_formed_card_free_traceparent(
    world, header, continued
):
    await world.raw(b"x", timeout=5, metadata=(("traceparent", header),))
    [server] = world.spans(METHOD, trace.SpanKind.SERVER)
    assert (f"{server.context.trace_id:032x}" == TRACE) is continued
    assert (server.parent is not None) is continued
    assert not tracing.card_shaped(f"{server.context.trace_id:032x}")
