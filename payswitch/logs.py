"""structlog JSON logging shared by every process, with a processor that masks card data.

One line per request at most on hot paths; loggers are cached. The masking processor is a
safety net: code must not log card data in the first place. It masks every run of 13 to 19
digits (Luhn-valid or not: a mistyped PAN is one digit away from a real one), but leaves whole
the hex identifiers an operator needs to diagnose a request (a KSN, a transaction id): a PAN is
decimal and 13 to 19 characters long, a KSN 24 hex characters, an id 32.
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
# A standalone token of exactly 24 hex characters (a DUKPT KSN: initial key ID || counter) or
# 32 (a transaction id, a trace id) is an identifier: its digit runs are not PANs.
_HEX_ID = re.compile(r"(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{32}|[0-9A-Fa-f]{24})(?![0-9A-Za-z])")
# Fields whose value, when it is hex of exactly this length, is such an identifier too. A
# device's initial key ID has the length of a PAN (16), so only its field name tells them apart.
_HEX_FIELDS = {"ksn": 24, "device": 16, "ikid": 16, "transaction_id": 32, "trace_id": 32}
_HEX = frozenset("0123456789abcdefABCDEF")


def _mask_digits(text: str) -> str:
    return _PAN_LIKE.sub(lambda m: m.group(1) + "*" * (len(m.group(0)) - 10) + m.group(2), text)


def _mask_text(text: str) -> str:
    """Every PAN-like digit run masked, except inside a standalone hex identifier."""
    out: list[str] = []
    last = 0
    for m in _HEX_ID.finditer(text):
        out += (_mask_digits(text[last : m.start()]), m.group(0))
        last = m.end()
    out.append(_mask_digits(text[last:]))
    return "".join(out)


def _is_hex_id(key: str, value: str) -> bool:
    return len(value) == _HEX_FIELDS.get(key, -1) and set(value) <= _HEX


def _mask_event(_logger: object, _name: str, event: EventDict) -> EventDict:
    for key, value in event.items():
        if isinstance(value, str):
            if not _is_hex_id(key, value):
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
