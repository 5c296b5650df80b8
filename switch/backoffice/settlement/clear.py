"""The ``clear`` step: every CLOSED batch streamed into its acquirer's clearing file.

The CLOSED batches are listed by the store (``Store.closed_batches``: no batch history read),
each read a page of items at a time (``Store.batch_items_page``, its first page once for
both the stand-in check and the records); the items are gathered into pages of ``PAGE``
across batches, and each page's transactions read in one ``Store.get_transactions`` call and
posted to the ledger in one flush; each record goes straight to its acquirer's
``ClearingWriter`` (nothing of the day is held but the open files and the list of batches to
mark). The files are renamed
into place when whole; only then are the batches marked CLEARED. A crash before that leaves
temporary files (removed by the next run, ``clearing.discard_partial``) and CLOSED batches,
which the next run presents again: the issuer answers a presentment it has seen with its first
result, so nothing is posted twice. A batch holding a stand-in sale whose advice is owed waits
whole (``switch.backoffice.settlement.standin``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from payswitch.crashpoint import crashpoint
from payswitch.logs import get as get_logger
from payswitch.settlement.clearing import ClearingWriter, cutoff_date, discard_partial
from switch.backoffice.settlement.context import (
    PAGE,
    Record,
    RunContext,
    call_hooks,
    flush_hooks,
)
from switch.backoffice.settlement.standin import advice_owed, owed_advices
from switch.domain.batches import BatchItem, ItemKind
from switch.domain.transactions import Transaction, TxState, TxType
from switch.store.base import Store

_log = get_logger("switch.backoffice.settlement")

CLOSED_BATCHES_PER_RUN = 20_000  # CLOSED batches per run (a larger backlog: the next runs)
HELD_ITEMS = 50_000  # a batch's items kept between its stand-in check and its records (~10 MB)


def record_of(tx: Transaction, kind: str, batch_no: int, original: Transaction | None) -> Record:
    """One clearing presentment (no PAN: masked PAN and token); a converted sale's with both
    amounts (``clearing.FX_FIELDS``)."""
    converted: Record = {}
    if tx.billing_currency:
        converted = {
            "billing_minor": tx.billing_captured_minor if kind == "CAPTURE" else tx.billing_minor,
            "billing_currency": tx.billing_currency,
            "fx_rate": tx.fx_rate,
            "rate_table": tx.rate_table,
        }
    return {
        **converted,
        "kind": kind,
        "transaction_id": tx.id,
        "rrn": tx.rrn,
        "original_rrn": original.rrn if original is not None else "",
        "terminal_id": tx.terminal_id,
        "merchant_id": tx.merchant_id,
        "scheme": tx.scheme,
        "bin": tx.bin,
        "masked_pan": tx.masked_pan,
        "card_token": tx.card_token,
        "mcc": tx.mcc,
        "amount_minor": tx.captured_minor if kind == "CAPTURE" else tx.amount_minor,
        "currency": tx.currency,
        "auth_code": tx.auth_code if original is None else original.auth_code,
        "authorized_minor": tx.amount_minor if original is None else original.amount_minor,
        "captured_at": int(tx.updated_at),
        "batch_no": batch_no,
    }


async def batch_records(
    store: Store, items: list[tuple[BatchItem, int]]
) -> list[tuple[Transaction, Record]]:
    """The clearing records of a page of items, each with its batch's number (a page may span
    several batches; voids and transactions no longer presentable give none)."""
    wanted = [(i, no) for i, no in items if i.kind is not ItemKind.VOID]
    txs = {tx.id: tx for tx in await store.get_transactions([i.transaction_id for i, _ in wanted])}
    originals_of = [
        tx.original_id
        for tx in txs.values()
        if tx.type is TxType.REFUND and tx.state is TxState.APPROVED and tx.original_id
    ]
    originals = {tx.id: tx for tx in await store.get_transactions(originals_of)}
    out: list[tuple[Transaction, Record]] = []
    for item, batch_no in wanted:
        tx = txs.get(item.transaction_id)
        if tx is None:
            continue
        if item.kind is ItemKind.SALE and tx.state is TxState.CAPTURED:
            out.append((tx, record_of(tx, "CAPTURE", batch_no, None)))
        elif item.kind is ItemKind.REFUND and tx.type is TxType.REFUND:
            if tx.state is TxState.APPROVED:
                original = originals.get(tx.original_id)
                out.append((tx, record_of(tx, "REFUND", batch_no, original)))
    return out


def _write_page(
    writers: dict[str, ClearingWriter], records: list[tuple[Transaction, Record]]
) -> None:
    for tx, rec in records:
        writers[tx.acquirer_id].add(rec)


class Clear:
    """CLOSED batches -> one clearing file per acquirer, then the batches CLEARED."""

    name = "clear"

    async def run(self, ctx: RunContext) -> int:
        store, now = ctx.store, ctx.now
        writers: dict[str, ClearingWriter] = {}
        await asyncio.to_thread(discard_partial, ctx.directory)
        owed = await owed_advices(store)
        rows = 0
        cleared: list[tuple[str, int]] = []

        async def writer_for(acquirer_id: str) -> ClearingWriter:
            if acquirer_id not in writers:
                seq = await store.next_sequence(f"clearing:{acquirer_id}:{cutoff_date(now)}")
                writers[acquirer_id] = await asyncio.to_thread(
                    ClearingWriter, ctx.directory, acquirer_id, now, seq, time.time()
                )
            return writers[acquirer_id]

        pending: list[tuple[BatchItem, int]] = []  # items of whole batches not yet written

        async def write(items: list[tuple[BatchItem, int]]) -> None:
            nonlocal rows
            page = await batch_records(store, items)
            for tx, _ in page:
                await writer_for(tx.acquirer_id)
            await asyncio.to_thread(_write_page, writers, page)
            for tx, rec in page:
                await call_hooks(ctx.presented, tx, rec)
            await flush_hooks(ctx.hooks)  # a buffering ledger posts the page now
            rows += len(page)
            crashpoint(f"{self.name}.item")

        try:
            for acquirer in ctx.topology.acquirers:  # every acquirer gets a file, maybe empty
                await writer_for(acquirer.id)
            for info in await store.closed_batches(CLOSED_BATCHES_PER_RUN):
                terminal_id = info.terminal_id
                first = await store.batch_items_page(terminal_id, info.batch_no, "", PAGE)
                waits, held = await self._waits(store, owed, terminal_id, info.batch_no, first)
                if waits:
                    continue
                pages = (
                    _held(held)
                    if held is not None
                    else _pages(store, terminal_id, info.batch_no, first)
                )
                # Pages of PAGE items across batches (a batch is often a few hundred items):
                # fewer, fuller reads and ledger flushes; the records keep their order.
                async for items in pages:
                    pending.extend((item, info.batch_no) for item in items)
                    while len(pending) >= PAGE:
                        await write(pending[:PAGE])
                        del pending[:PAGE]
                cleared.append((terminal_id, info.batch_no))
            if pending:
                await write(pending)
            for acquirer_id, writer in writers.items():
                ctx.result.files[acquirer_id] = await asyncio.to_thread(writer.finish)
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise
        for terminal_id, batch_no in cleared:
            await store.mark_batch_cleared(terminal_id, batch_no)
        _log.info("clearing_written", files=len(writers), batches=len(cleared), records=rows)
        return rows

    @staticmethod
    async def _waits(
        store: Store,
        owed: set[str] | None,
        terminal_id: str,
        batch_no: int,
        first: list[BatchItem],
    ) -> tuple[bool, list[list[BatchItem]] | None]:
        """Whether a stand-in sale of the batch still owes its advice (then logged: the batch
        waits whole, none of its records written), and the batch's pages this check read when
        they are few enough to keep (``HELD_ITEMS``), so the records are written from them:
        each page of a batch is read once (``first``, read by the caller, always is); a
        longer batch's pages are read again to write. No advice owed anywhere: no page but
        ``first`` is read here."""
        if owed is not None and not owed:
            return False, None
        waiting: list[str] = []
        held: list[list[BatchItem]] | None = []
        count = 0
        async for items in _pages(store, terminal_id, batch_no, first):
            count += len(items)
            if held is not None and count <= HELD_ITEMS:
                held.append(items)
            else:
                held = None
            for item in items:
                if item.kind is not ItemKind.SALE:
                    continue
                tx_id = item.transaction_id
                if (tx_id in owed) if owed is not None else await advice_owed(store, tx_id):
                    waiting.append(tx_id)
        if waiting:
            _log.warning(
                "clearing_waits_for_advice",
                terminal=terminal_id,
                batch=batch_no,
                transactions=waiting,
            )
        return bool(waiting), held


async def _held(pages: list[list[BatchItem]]) -> AsyncIterator[list[BatchItem]]:
    for items in pages:
        yield items


async def _pages(
    store: Store, terminal_id: str, batch_no: int, first: list[BatchItem]
) -> AsyncIterator[list[BatchItem]]:
    """A batch's items a page at a time (``Store.batch_items_page``), from its first page
    already read."""
    items = first
    while items:
        yield items
        if len(items) < PAGE:
            return
        after = items[-1].transaction_id
        items = await store.batch_items_page(terminal_id, batch_no, after, PAGE)
