"""Requests that are not protobuf at all get INVALID_ARGUMENT, not gRPC's UNKNOWN.

gRPC Python answers a request body that does not parse as the method's message with status
UNKNOWN ("Unexpected DecodeError"), before any switch code runs. A terminal or an integrator
must see that as their bad input, like any other: this interceptor gives every unary method a
deserializer that catches the decode error and answers INVALID_ARGUMENT with a BadRequest
naming the field ``request``. Nothing else runs for such a request, so it changes no state.
Found by the fuzz test (tests/e2e/test_fuzz.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from switch.wire.errors import InvalidArgument

_MALFORMED = object()  # what the safe deserializer hands on for bytes that do not parse


# grpc ships no types, and grpc.aio.server() takes only subclasses of its interceptor class.
class MalformedRequests(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
            return handler  # streams (reflection, health watch) and unknown methods as they are
        wrapped = _guarded(handler)
        self._wrapped[method] = wrapped
        return wrapped


def _guarded(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    deserialize = handler.request_deserializer
    behaviour = handler.unary_unary
    refusal = InvalidArgument("request", "not a well-formed message for this method").to_status()

    def safe(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError:
            return _MALFORMED

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if request is _MALFORMED:
            await context.abort_with_status(refusal)
        return await behaviour(request, context)

    return grpc.unary_unary_rpc_method_handler(
        unary, request_deserializer=safe, response_serializer=handler.response_serializer
    )
