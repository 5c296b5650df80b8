"""Typed errors of the terminal SDK, one per way a request can end without a response code.

A decline is not an error (it is an answered request with its ISO code); these are for calls
the switch refused or never answered. Messages are scrubbed of anything that looks like a PAN
before they are stored, so printing or logging an error can never leak card data, even if a
server were careless.
"""

from __future__ import annotations

import re

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

# Any run of 12-19 digits could be a PAN: keep the first six and last four, as receipts do.
_PAN_LIKE = re.compile(r"(?<!\d)(\d{6})(\d{2,9})(\d{4})(?!\d)")


def scrub(text: str) -> str:
    """Mask PAN-like digit runs in free text (server messages, exception text)."""
    return _PAN_LIKE.sub(lambda m: m.group(1) + "*" * len(m.group(2)) + m.group(3), text)


class TerminalError(Exception):
    """Base class: the request got no response code.

    ``code`` is the gRPC status (None when the SDK refused the request before sending it),
    ``field`` the request field at fault when known, ``idempotency_key`` and ``stan`` identify
    the request so that it can be looked up or retried unchanged.
    """

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        field: str = "",
        idempotency_key: str = "",
        stan: int = 0,
    ) -> None:
        message = scrub(message)
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.idempotency_key = idempotency_key
        self.stan = stan

    @property
    def code_name(self) -> str:
        return self.code.name if self.code is not None else "LOCAL"


class InvalidRequest(TerminalError):
    """INVALID_ARGUMENT (or a local check that would have produced it); ``field`` names it."""


class Refused(TerminalError):
    """FAILED_PRECONDITION: the referenced transaction's state does not allow the operation."""


class IdempotencyConflict(Refused):
    """FAILED_PRECONDITION because the idempotency key was already used with other content."""


class NotFound(TerminalError):
    """NOT_FOUND: no such transaction (for this terminal)."""


class AccessDenied(TerminalError):
    """UNAUTHENTICATED or PERMISSION_DENIED: the terminal/merchant pair is not accepted."""


class Overloaded(TerminalError):
    """RESOURCE_EXHAUSTED: the switch is shedding load; try again later."""


class ResponseUntrusted(TerminalError):
    """The answer's response MAC is missing or does not verify under the request's DUKPT
    response key: it may have been altered or forged on the way, so its outcome is unknown.

    Never print an approval receipt for it. Send the same prepared request again (same key,
    same bytes: the switch replays the answer it kept, MAC'd for that KSN) or look it up
    (``status``); if it still cannot be trusted, void or refund the sale with a new request.
    ``operation`` names the request ("pay", "capture", ...).
    """

    def __init__(
        self, message: str, *, operation: str, idempotency_key: str = "", stan: int = 0
    ) -> None:
        super().__init__(message, idempotency_key=idempotency_key, stan=stan)
        self.operation = operation


class NotConnected(TerminalError):
    """No connection to the switch could be made (nothing listening, a failed TLS handshake,
    plaintext to a TLS port): nothing was sent, so nothing can have happened, and there is no
    outcome to look up."""


class SwitchUnavailable(TerminalError):
    """UNAVAILABLE, DEADLINE_EXCEEDED or ABORTED still failing after every allowed retry.

    The outcome of a money-moving request is then unknown: look it up with
    ``status(idempotency_key=...)`` or send the same prepared request again.
    """

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        code: grpc.StatusCode | None = None,
        field: str = "",
        idempotency_key: str = "",
        stan: int = 0,
    ) -> None:
        super().__init__(
            message, code=code, field=field, idempotency_key=idempotency_key, stan=stan
        )
        self.attempts = attempts


_BY_CODE: dict[grpc.StatusCode, type[TerminalError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.OUT_OF_RANGE: InvalidRequest,
    grpc.StatusCode.FAILED_PRECONDITION: Refused,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.UNAUTHENTICATED: AccessDenied,
    grpc.StatusCode.PERMISSION_DENIED: AccessDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Overloaded,
    grpc.StatusCode.UNAVAILABLE: SwitchUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: SwitchUnavailable,
    grpc.StatusCode.ABORTED: SwitchUnavailable,
}


def field_violations(err: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """(field, description) pairs from a google.rpc.BadRequest in the rich status details."""
    try:
        status = rpc_status.from_call(err)
    except ValueError:  # code or message inconsistent with the status proto: ignore details
        return []
    if status is None:
        return []
    out: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.extend((v.field, v.description) for v in bad.field_violations)
    return out


def _is_key_conflict(message: str) -> bool:
    # The switch names the field at the start of its message ("idempotency_key: already used
    # ..."); FAILED_PRECONDITION carries no structured detail that would say it otherwise.
    return message.startswith("idempotency_key")


def from_rpc_error(
    err: grpc.aio.AioRpcError, *, attempts: int = 1, idempotency_key: str = "", stan: int = 0
) -> TerminalError:
    """Translate a gRPC error into the SDK's typed error (never chained: no raw details)."""
    code = err.code()
    details = err.details() or code.name
    kind = _BY_CODE.get(code, TerminalError)
    ids = {"code": code, "idempotency_key": idempotency_key, "stan": stan}
    if kind is InvalidRequest:
        violations = field_violations(err)
        field = violations[0][0] if violations else ""
        message = "; ".join(f"{f}: {d}" for f, d in violations) if violations else details
        return InvalidRequest(f"invalid request: {message}", field=field, **ids)
    if kind is Refused and _is_key_conflict(details):
        return IdempotencyConflict(details, field="idempotency_key", **ids)
    if kind is SwitchUnavailable:
        return SwitchUnavailable(
            f"{code.name} after {attempts} attempt(s): {details}", attempts=attempts, **ids
        )
    return kind(details, **ids)
