"""The simulated issuer's back office: clearing and settlement over gRPC.

``Present`` posts the presentments an acquirer sends in the issuer's books
(``issuer.books_settlement``) and writes the issuer's own report, one per file (a file the
acquirer sends in pages, ``PresentRequest.page``, is kept as a part per page and joined into
that one report at its ``last_page``);
``ExpireHolds`` releases holds that expired uncaptured. Presenting the same file again is
safe: a presentment the books have seen answers with its first result.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import grpc

from issuer.bookkeeper import Bookkeeper
from issuer.books_settlement import (
    PresentmentIn,
    PresentmentOut,
    assemble_issuer_report,
    write_issuer_part,
    write_issuer_report,
)
from payswitch.settlement.clock import cutoff_clock
from payswitch.v1 import common_pb2, settlement_pb2, settlement_pb2_grpc

ISSUER_SERVICE = settlement_pb2.DESCRIPTOR.services_by_name["IssuerSettlementService"]
_FILE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_KINDS = {
    settlement_pb2.PRESENTMENT_KIND_CAPTURE: "CAPTURE",
    settlement_pb2.PRESENTMENT_KIND_REFUND: "REFUND",
}
_STATUS = {"POSTED": settlement_pb2.PRESENTMENT_STATUS_POSTED}


async def _clock(now_ms: int, context: grpc.aio.ServicerContext) -> float:
    """The request's cut-off clock, or INVALID_ARGUMENT before anything is touched."""
    try:
        return cutoff_clock(now_ms)
    except ValueError as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise  # abort raises; this line only tells the type checker


class IssuerSettlementServicer(settlement_pb2_grpc.IssuerSettlementServiceServicer):
    def __init__(self, issuer_id: str, books: Bookkeeper) -> None:
        self._id = issuer_id
        self._books = books

    async def Present(
        self, request: settlement_pb2.PresentRequest, context: grpc.aio.ServicerContext
    ) -> settlement_pb2.PresentResponse:
        if not _FILE_ID.fullmatch(request.file_id) or ".." in request.file_id:
            # It names a report file: a path of its own would write outside the report folder.
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "file_id: 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )
        now = await _clock(request.now_ms, context)
        items = []
        for n, p in enumerate(request.presentments):
            if p.kind not in _KINDS or not p.rrn or p.amount.minor_units <= 0:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"presentments[{n}]")
            items.append(
                PresentmentIn(
                    _KINDS[p.kind],
                    p.transaction_id,
                    p.rrn,
                    p.original_rrn,
                    p.mcc,
                    p.amount.minor_units,
                    p.amount.currency,
                )
            )
        outs = await self._books.present_all(request.file_id, items, now)
        if request.report_dir:
            postings = [
                {
                    "transaction_id": o.transaction_id,
                    "rrn": o.rrn,
                    "kind": i.kind,
                    "amount_minor": i.amount,
                    "currency": i.currency,
                    "posted_minor": o.posted,
                    # the account's currency: a converted sale posts its billing amount
                    "posted_currency": o.extra.get("posted_currency", i.currency),
                    "status": o.status,
                    "flags": list(o.flags),
                }
                for i, o in zip(items, outs, strict=True)
            ]
            head: dict[str, object] = {
                "issuer_id": self._id,
                "file_id": request.file_id,
                "acquirer_id": request.acquirer_id,
            }
            await asyncio.to_thread(self._report, request, head, postings)
        return settlement_pb2.PresentResponse(
            results=[
                settlement_pb2.PresentmentResult(
                    transaction_id=o.transaction_id,
                    rrn=o.rrn,
                    status=_STATUS.get(o.status, settlement_pb2.PRESENTMENT_STATUS_REJECTED),
                    flags=list(o.flags),
                    posted_minor=o.posted,
                    billing=_billing(o),
                )
                for o in outs
            ]
        )

    @staticmethod
    def _report(
        request: settlement_pb2.PresentRequest,
        head: dict[str, object],
        postings: list[dict[str, Any]],
    ) -> None:
        """A whole file's report at once; a paged file's part per page, joined into the one
        report at its last page."""
        report_dir, issuer_id = Path(request.report_dir), str(head["issuer_id"])
        if not request.page:
            doc = {**head, "postings": postings}
            write_issuer_report(report_dir, issuer_id, request.file_id, doc)
            return
        if postings:
            write_issuer_part(report_dir, issuer_id, request.file_id, request.page, postings)
        if request.last_page:
            assemble_issuer_report(report_dir, issuer_id, request.file_id, head)

    async def ExpireHolds(
        self, request: settlement_pb2.ExpireHoldsRequest, context: grpc.aio.ServicerContext
    ) -> settlement_pb2.ExpireHoldsResponse:
        now = await _clock(request.now_ms, context)
        released = await self._books.expire_holds(now)
        if request.report_dir and released:
            doc = {"issuer_id": self._id, "expired_at": int(now), "released_rrns": released}
            name = f"expired-{int(now * 1000)}"
            await asyncio.to_thread(
                write_issuer_report, Path(request.report_dir), self._id, name, doc
            )
        return settlement_pb2.ExpireHoldsResponse(released_rrns=released)


def _billing(o: PresentmentOut) -> common_pb2.Money | None:
    """A converted sale's presentment in the account's currency (issue 16), else None."""
    billed = o.extra.get("billing_minor")
    if not isinstance(billed, int):
        return None
    return common_pb2.Money(minor_units=billed, currency=str(o.extra["posted_currency"]))
