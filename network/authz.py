"""Who may call what on a network node: the caller's certificate identity, per method.

With ``[network] tls`` every node's port takes only clients of the network CA (the handshake
checks that); this interceptor then checks the *identity* the certificate names
(``payswitch.tls.network_identity``) against the method's callers below, before the servicer
runs, so a refused call changes nothing. A certificate that chains but names another party (an
acquirer calling an issuer directly, a scheme calling the back office) is PERMISSION_DENIED. A
method not listed is refused too (fail closed): a new RPC must say who calls it.

The callers follow the topology's flow: the switch calls acquirers; acquirers call schemes;
schemes call issuers. The back office: the switch runs the settlement (acquirer ``Settle``,
issuer ``ExpireHolds``); an acquirer presents to the issuer (``Present``). The network operator
(tests, simulation) alone sets faults and reads an issuer's books. Health and reflection are
open to any client of the network CA (the launcher probes with the operator's certificate).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from payswitch import logs
from payswitch.tls import network_identity

_ANY = frozenset({"*"})
_V1 = "/payswitch.v1."

# "/package.Service/Method" or "/package.Service/" (every method) -> the kinds that may call.
CALLERS: dict[str, frozenset[str]] = {
    f"{_V1}AcquirerService/": frozenset({"switch"}),
    f"{_V1}SchemeService/": frozenset({"acquirer"}),
    f"{_V1}IssuerService/": frozenset({"scheme"}),
    f"{_V1}IssuerService/GetAccount": frozenset({"operator"}),
    f"{_V1}IssuerService/GetHold": frozenset({"operator"}),
    f"{_V1}AcquirerSettlementService/Settle": frozenset({"switch"}),
    f"{_V1}IssuerSettlementService/Present": frozenset({"acquirer"}),
    f"{_V1}IssuerSettlementService/ExpireHolds": frozenset({"switch"}),
    f"{_V1}IssuerOfflineService/": frozenset({"switch"}),  # offline payments (issue 13)
    f"{_V1}NodeControlService/": frozenset({"operator"}),
    "/grpc.health.v1.Health/": _ANY,
    "/grpc.reflection.v1alpha.ServerReflection/": _ANY,
}

_log = logs.get("network.authz")


def callers(method: str) -> frozenset[str]:
    """The kinds that may call ``method`` (its own entry, else its service's); none if unlisted."""
    found = CALLERS.get(method)
    if found is None:
        found = CALLERS.get(method[: method.rfind("/") + 1], frozenset())
    return found


def allowed(method: str, identity: tuple[str, str] | None) -> bool:
    kinds = callers(method)
    return kinds is _ANY or (identity is not None and identity[0] in kinds)


Unary = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class CallerCheck(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """The server interceptor enforcing ``CALLERS`` (every node's server, mTLS on)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or callers(method) is _ANY:
            return handler
        inner: Unary | None = handler.unary_unary
        if inner is None:  # every guarded RPC is unary; anything else is refused
            inner = _refuse

        async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
            identity = network_identity(context.auth_context())
            if not allowed(method, identity):
                who = f"{identity[0]} {identity[1]}" if identity else "no network identity"
                _log.warning("caller_refused", method=method, caller=who)
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED, f"{method}: not callable by {who}"
                )
            assert inner is not None
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            checked,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def _refuse(_request: Any, context: grpc.aio.ServicerContext) -> Any:
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not a unary call")
