"""The simulated acquirer's back office: clearing and settlement over gRPC.

``Settle`` reads the switch's clearing file (``payswitch-clearing/1``) from the directory the
simulated world shares, presents each record to the card's issuer (found by BIN in the
topology; directly, not through a scheme node: the scheme nodes of this simulation carry online
traffic only, as a scheme's clearing platform is a separate system), computes the fees with
``payswitch.settlement.fees`` (captures only: a refund carries no fees), and writes the
settlement report (``payswitch-settlement/2``, written as a stream). A file is checked whole
first (a streamed pass), then read again a page at a time (``PAGE``): each issuer gets the
page's presentments of its cards in one ``Present`` call (``page`` numbered), and the page's
entries are appended to the report, so neither the file nor the report is ever held whole.
An unreachable issuer fails the whole call (UNAVAILABLE, no report): settling the same file
again is safe, the issuer answers a presentment it has seen with its first result.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc

from network.channels import Channels
from payswitch import fx
from payswitch.cards import Scheme
from payswitch.process import connect_address
from payswitch.settlement.clearing import (
    ClearingFormatError,
    check_clearing_file,
    iter_clearing_file,
)
from payswitch.settlement.clock import cutoff_clock
from payswitch.settlement.fees import NO_FEES, presentment_fees
from payswitch.settlement.report import ReportWriter, settle_entry_in
from payswitch.v1 import common_pb2, settlement_pb2, settlement_pb2_grpc
from payswitch.world.topology import Topology

PRESENT_TIMEOUT_S = 30.0
PAGE = 2_000  # presentments read, presented and reported at once (issue 17: bounded memory)
ACQUIRER_SERVICE = settlement_pb2.DESCRIPTOR.services_by_name["AcquirerSettlementService"]


def _presentment(rec: dict[str, Any]) -> settlement_pb2.Presentment:
    kind = (
        settlement_pb2.PRESENTMENT_KIND_CAPTURE
        if rec["kind"] == "CAPTURE"
        else settlement_pb2.PRESENTMENT_KIND_REFUND
    )
    return settlement_pb2.Presentment(
        kind=kind,
        transaction_id=rec["transaction_id"],
        rrn=rec["rrn"],
        original_rrn=rec["original_rrn"],
        mcc=rec["mcc"],
        amount=common_pb2.Money(minor_units=rec["amount_minor"], currency=rec["currency"]),
        authorized_minor=rec["authorized_minor"],
    )


def _take(records: Iterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    return list(itertools.islice(records, n))


def _write_all(writer: ReportWriter, entries: list[dict[str, Any]]) -> None:
    for e in entries:
        writer.add(e)


class AcquirerSettlementServicer(settlement_pb2_grpc.AcquirerSettlementServiceServicer):
    def __init__(
        self,
        acquirer_id: str,
        topology: Topology,
        client: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._id = acquirer_id
        self._topology = topology
        self._channels = Channels(client)  # presents to issuers as this acquirer

    async def Settle(
        self, request: settlement_pb2.SettleRequest, context: grpc.aio.ServicerContext
    ) -> settlement_pb2.SettleResponse:
        if not request.clearing_path or not request.report_dir:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "clearing_path and report_dir are required"
            )
        try:
            settled_at = cutoff_clock(request.now_ms)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise  # abort raises; this line only tells the type checker
        path = Path(request.clearing_path)
        try:  # the whole file checked first (a stream: bounded memory), nothing presented yet
            header = await asyncio.to_thread(check_clearing_file, path)
        except ClearingFormatError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"clearing_path: {exc}")
            raise  # abort raises; this line only tells the type checker
        if header["acquirer_id"] != self._id:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "clearing file of another acquirer"
            )
        file_id: str = header["file_id"]
        writer = await asyncio.to_thread(
            ReportWriter, Path(request.report_dir), self._id, file_id, settled_at
        )
        try:
            await self._settle_pages(path, file_id, writer, request, settled_at, context)
            report_file = await asyncio.to_thread(writer.finish)
        except BaseException:
            writer.abort()
            raise
        return settlement_pb2.SettleResponse(
            report_path=str(report_file),
            settled=writer.settled,
            rejected=writer.count - writer.settled,
        )

    async def _settle_pages(
        self,
        path: Path,
        file_id: str,
        writer: ReportWriter,
        request: settlement_pb2.SettleRequest,
        settled_at: float,
        context: grpc.aio.ServicerContext,
    ) -> None:
        """Present the file a page at a time (each issuer gets the page's presentments of its
        cards in one call), each page's entries appended to the report."""
        settles_in = self._topology.acquirer(self._id).settlement_currency
        if settles_in:
            writer.settlement_totals = {}
        day = datetime.fromtimestamp(settled_at, UTC).date()
        records = iter_clearing_file(path)
        next(records)  # the header, checked already
        pages = 0
        presented_to: set[str] = set()  # the issuers that got a page: each joins its parts
        while True:
            page = await asyncio.to_thread(_take, records, PAGE)
            if not page:
                break
            pages += 1
            results = await self._present_page(
                file_id, page, pages, presented_to, request, settled_at, context
            )
            entries = [self._entry(r, results.get((r["kind"], r["rrn"]))) for r in page]
            if settles_in and writer.settlement_totals is not None:
                schemes = {r["transaction_id"]: r["scheme"] for r in page}

                def rate_of(
                    entry: dict[str, Any], schemes: dict[str, str] = schemes
                ) -> Decimal | None:
                    brand = Scheme(schemes[entry["transaction_id"]])
                    scheme = self._topology.scheme_for_brand(brand)
                    table = fx.table_for(scheme.rates, day) if scheme is not None else None
                    try:
                        return table.rate(entry["currency"], settles_in) if table else None
                    except fx.FxError:
                        return None

                for e in entries:
                    settle_entry_in(e, settles_in, rate_of, writer.settlement_totals)
            await asyncio.to_thread(_write_all, writer, entries)
        for issuer_id in sorted(presented_to):
            await self._present(
                issuer_id, file_id, [], pages + 1, True, request, settled_at, context
            )

    async def _present_page(
        self,
        file_id: str,
        page: list[dict[str, Any]],
        page_no: int,
        presented_to: set[str],
        request: settlement_pb2.SettleRequest,
        settled_at: float,
        context: grpc.aio.ServicerContext,
    ) -> dict[tuple[str, str], settlement_pb2.PresentmentResult]:
        groups: dict[str, list[dict[str, Any]]] = {}
        for rec in page:
            issuer = self._topology.issuer_for_pan(rec["bin"])
            groups.setdefault(issuer.id if issuer else "", []).append(rec)
        results: dict[tuple[str, str], settlement_pb2.PresentmentResult] = {}
        for issuer_id, recs in groups.items():
            if not issuer_id:
                continue
            presented_to.add(issuer_id)
            resp = await self._present(
                issuer_id, file_id, recs, page_no, False, request, settled_at, context
            )
            for rec, res in zip(recs, resp.results, strict=True):
                results[(rec["kind"], rec["rrn"])] = res
        return results

    async def _present(
        self,
        issuer_id: str,
        file_id: str,
        recs: list[dict[str, Any]],
        page_no: int,
        last: bool,
        request: settlement_pb2.SettleRequest,
        settled_at: float,
        context: grpc.aio.ServicerContext,
    ) -> settlement_pb2.PresentResponse:
        """One ``Present`` call; an issuer that does not answer fails the whole Settle."""
        listen = self._topology.issuer(issuer_id).listen
        stub = settlement_pb2_grpc.IssuerSettlementServiceStub(
            self._channels.get(connect_address(listen), ("issuer", issuer_id))
        )
        try:
            resp: settlement_pb2.PresentResponse = await stub.Present(
                settlement_pb2.PresentRequest(
                    file_id=file_id,
                    acquirer_id=self._id,
                    presentments=[_presentment(r) for r in recs],
                    now_ms=int(settled_at * 1000),
                    report_dir=request.report_dir,
                    page=page_no,
                    last_page=last,
                ),
                timeout=PRESENT_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as exc:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, f"issuer {issuer_id}: {exc.code().name}"
            )
            raise  # abort raises; this line only tells the type checker
        return resp

    def _entry(
        self, rec: dict[str, Any], res: settlement_pb2.PresentmentResult | None
    ) -> dict[str, Any]:
        ok = res is not None and res.status == settlement_pb2.PRESENTMENT_STATUS_POSTED
        fees = NO_FEES
        if ok:
            fees = presentment_fees(
                self._topology.fees,
                rec["kind"],
                rec["scheme"],
                rec["mcc"],
                rec["currency"],
                rec["amount_minor"],
            )
        reason = "NO_ISSUER" if res is None else ",".join(res.flags)
        converted = {}
        if rec.get("billing_currency"):  # a converted sale: both amounts, and what was posted
            converted = {
                "billing_minor": rec["billing_minor"],
                "billing_currency": rec["billing_currency"],
                "fx_rate": rec["fx_rate"],
                "issuer_posted_minor": res.billing.minor_units if ok and res is not None else 0,
            }
        return {
            **converted,
            "transaction_id": rec["transaction_id"],
            "rrn": rec["rrn"],
            "kind": rec["kind"],
            "amount_minor": rec["amount_minor"],
            "currency": rec["currency"],
            "interchange_minor": fees.interchange_minor,
            "scheme_fee_minor": fees.scheme_fee_minor,
            "status": "SETTLED" if ok else "REJECTED",
            "reason": reason,
        }

    async def close(self) -> None:
        await self._channels.close()
