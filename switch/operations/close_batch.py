"""CloseBatch: close the terminal's open batch and reconcile it with the terminal's totals.

ISO 8583 0500/0510 in spirit: the terminal sends its own totals per (currency, scheme); the
switch closes the batch with *its* totals (the store's items are the truth), opens the next
one, and answers in balance, or out of balance with every differing figure. Under an
idempotency key a retry replays the first answer (and closes nothing more).
"""

from __future__ import annotations

import time

from payswitch import money
from payswitch.cards import Scheme
from payswitch.v1 import common_pb2, terminal_pb2
from switch.backoffice.batches.totals import FIGURES, Line, Mismatch, compare, totals_of
from switch.core.budget import Budget
from switch.operations.common import authenticate, idempotent
from switch.services import Services
from switch.wire import validation
from switch.wire.convert import scheme_to_proto
from switch.wire.errors import InvalidArgument

MAX_LINES = 64
_MAX_COUNT = 999_999
_SCHEME_OF_PROTO = {scheme_to_proto(s): s.value for s in Scheme}


def _terminal_lines(req: terminal_pb2.CloseBatchRequest) -> list[Line]:
    """The terminal's totals, every field checked (INVALID_ARGUMENT names it)."""
    if len(req.terminal_totals) > MAX_LINES:
        raise InvalidArgument("terminal_totals", f"at most {MAX_LINES} lines")
    lines: list[Line] = []
    seen: set[tuple[str, str]] = set()
    for n, t in enumerate(req.terminal_totals):
        where = f"terminal_totals[{n}]"
        if not money.is_currency(t.currency):
            raise InvalidArgument(f"{where}.currency", "must be an ISO 4217 code")
        scheme = _SCHEME_OF_PROTO.get(t.scheme)
        if scheme is None:
            raise InvalidArgument(f"{where}.scheme", "must be a card scheme")
        for name in FIGURES:
            value = getattr(t, name)
            limit = money.MAX_MINOR_UNITS if name.endswith("_minor") else _MAX_COUNT
            if not 0 <= value <= limit:
                raise InvalidArgument(f"{where}.{name}", f"must be between 0 and {limit}")
        if (t.currency, scheme) in seen:
            raise InvalidArgument(where, "a second line for the same currency and scheme")
        seen.add((t.currency, scheme))
        lines.append(Line(t.currency, scheme, *(getattr(t, f) for f in FIGURES)))
    return lines


def line_to_proto(line: Line) -> terminal_pb2.BatchTotal:
    return terminal_pb2.BatchTotal(
        currency=line.currency,
        scheme=scheme_to_proto(line.scheme),
        **{f: getattr(line, f) for f in FIGURES},
    )


def _mismatch_to_proto(m: Mismatch) -> terminal_pb2.BatchMismatch:
    return terminal_pb2.BatchMismatch(
        currency=m.currency,
        scheme=scheme_to_proto(m.scheme),
        field=m.field,
        switch_value=m.switch_value,
        terminal_value=m.terminal_value,
    )


async def close_batch(
    svc: Services, req: terminal_pb2.CloseBatchRequest, budget: Budget
) -> terminal_pb2.CloseBatchResponse:
    validation.idempotency_key(req.idempotency_key)
    validation.identifier(req.terminal_id, "terminal_id")
    validation.identifier(req.merchant_id, "merchant_id")
    svc.registry.identity(req.terminal_id).check_merchant(req.merchant_id)
    theirs = _terminal_lines(req)
    ksn, fingerprint = await authenticate(svc, req)

    async def work() -> tuple[terminal_pb2.CloseBatchResponse, str]:
        closed = await svc.store.close_batch(req.terminal_id, time.time())
        ours = totals_of(closed.items)
        mismatches = compare(ours, theirs)
        in_balance = not mismatches
        resp = terminal_pb2.CloseBatchResponse(
            batch_number=closed.info.batch_no,
            switch_totals=[line_to_proto(line) for line in ours],
            in_balance=in_balance,
            reconciliation=(
                terminal_pb2.BATCH_RECONCILIATION_IN_BALANCE
                if in_balance
                else terminal_pb2.BATCH_RECONCILIATION_OUT_OF_BALANCE
            ),
            mismatches=[_mismatch_to_proto(m) for m in mismatches],
            opened_at_ms=int(closed.info.opened_at * 1000),
            closed_at_ms=int(closed.info.closed_at * 1000),
            message="in balance" if in_balance else f"out of balance: {len(mismatches)} figures",
            response_code=common_pb2.RESPONSE_CODE_APPROVED,
        )
        return resp, ""

    return await idempotent(
        svc,
        req=req,
        ksn=ksn,
        fingerprint=fingerprint,
        budget=budget,
        response_type=terminal_pb2.CloseBatchResponse,
        work=work,
    )


assert common_pb2.CARD_SCHEME_UNSPECIFIED not in _SCHEME_OF_PROTO
