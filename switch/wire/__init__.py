"""The terminal API as the switch reads and writes it: request validation (``validation``),
conversion between the domain and protobuf (``convert``), and API errors as gRPC statuses
(``errors``: INVALID_ARGUMENT naming the field, and the rest)."""
