"""structlog JSON logging shared by every process, with a processor that masks card data.

One line per request at most on hot paths (see shared/notes/grpc-perf.md); loggers are cached.
The masking processor is a safety net: code must not log card data in the first place.
"""

from __future__ import annotations

import logging
import re
import sys

import orjson
import structlog
from opentelemetry import trace
from structlog.typing import EventDict, FilteringBoundLogger

_PAN_LIKE = re.compile(r"(?<!\d)(\d{6})\d{3,9}(\d{4})(?!\d)")


def _mask_text(text: str) -> str:
    return _PAN_LIKE.sub(lambda m: m.group(1) + "*" * (len(m.group(0)) - 10) + m.group(2), text)


def _mask_event(_logger: object, _name: str, event: EventDict) -> EventDict:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = _mask_text(value)
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 10**11:
            event[key] = _mask_text(str(value))
    return event


def _trace_ids(_logger: object, _name: str, event: EventDict) -> EventDict:
    """``trace_id`` and ``span_id`` of the current span, when there is one (payswitch.tracing):
    a line of one request can be found in every process's log by its trace."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event["trace_id"] = format(ctx.trace_id, "032x")
        event["span_id"] = format(ctx.span_id, "016x")
    return event


def configure(node: str, level: str = "info") -> None:
    """JSON lines on stdout, each carrying ``node``; PAN-like digit runs are masked."""
    numeric = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _trace_ids,
            _mask_event,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.BytesLoggerFactory(file=sys.stdout.buffer),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(node=node)


def get(name: str) -> FilteringBoundLogger:
    logger: FilteringBoundLogger = structlog.get_logger(name)
    return logger
