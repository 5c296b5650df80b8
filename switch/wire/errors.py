"""gRPC errors of the terminal API: INVALID_ARGUMENT carries a google.rpc.BadRequest naming
the field, so integrators can point at what was wrong. Messages never contain card data."""

from __future__ import annotations

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status


class ApiError(Exception):
    """An error answered as a gRPC status instead of a response code."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_status(self) -> grpc.Status:
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        return rpc_status.to_status(status)


class InvalidArgument(ApiError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.description = message

    def to_status(self) -> grpc.Status:
        detail = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=self.field, description=self.description
                )
            ]
        )
        status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=self.message)
        status.details.add().Pack(detail)
        return rpc_status.to_status(status)


class Unauthenticated(ApiError):
    """The request's MAC does not verify: altered in transit, or a terminal without the right
    DUKPT keys. Not a field problem, so no BadRequest: the whole request is untrusted."""

    code = grpc.StatusCode.UNAUTHENTICATED


class FailedPrecondition(ApiError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class NotFound(ApiError):
    code = grpc.StatusCode.NOT_FOUND


class Aborted(ApiError):
    """The first request under this idempotency key is still being processed: retry it."""

    code = grpc.StatusCode.ABORTED


class Unavailable(ApiError):
    code = grpc.StatusCode.UNAVAILABLE


class PermissionDenied(ApiError):
    """The terminal is known but may not act on this (e.g. another terminal's sale under the
    ``same_terminal`` follow-up policy)."""

    code = grpc.StatusCode.PERMISSION_DENIED
