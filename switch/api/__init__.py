"""The switch's gRPC surface: the terminal service (``terminal``), the operators' admin
service (``admin``), admission control (``admission``: shedding and per-terminal rates) and the
interceptor that answers an unparseable body INVALID_ARGUMENT (``decoding``)."""
