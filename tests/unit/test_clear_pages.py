"""The clear step's pages (issue 17): items are gathered into pages of ``PAGE`` across batches
(fewer, fuller reads and ledger flushes), each batch's first page is read once (for the stand-in
check and for the records), the records keep the order of an unpaged run, and a batch whose
stand-in sale still owes its advice waits whole while the others clear. A real SQLite file;
the page size is made small so three batches span several pages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from payswitch.world.topology import load
from switch.backoffice.batches.join import item_of
from switch.backoffice.settlement import clear
from switch.backoffice.settlement.run import run_cutoff
from switch.domain.batches import BatchState, ItemKind
from switch.domain.saf import SafKind, new_item
from switch.domain.transactions import Changes, Transaction, TxState
from switch.store.sqlite.store import SqliteStore
from tests.store.storekit import NOW, new_tx

TOPOLOGY = load("topology/default.toml")
ACQ = TOPOLOGY.acquirers[0].id


async def _captured(store: SqliteStore, terminal: str) -> Transaction:
    tx = new_tx(terminal_id=terminal, auth_code="123456")
    await store.insert_transaction(tx)
    await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING, Changes(acquirer_id=ACQ))
    await store.transition(tx.id, TxState.PENDING, TxState.APPROVED)
    tx = await store.transition(
        tx.id, TxState.APPROVED, TxState.CAPTURED, Changes(captured_minor=tx.amount_minor)
    )
    await store.join_batch(terminal, item_of(tx, ItemKind.SALE), NOW)
    return tx


@pytest.mark.parametrize("owes", [True, False])
async def test_pages_span_batches_and_a_waiting_batch_stays_closed(
    owes: bool, store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``owes``: T-W's stand-in sale still owes its advice (the batches are checked page by
    page, T-W waits); else no advice is owed anywhere (no batch is checked, T-W clears)."""
    monkeypatch.setattr(clear, "PAGE", 3)
    sizes = {"T-A": 4, "T-B": 1, "T-C": 5, "T-W": 2}  # T-W: a stand-in sale owes its advice
    sales = {t: [await _captured(store, t) for _ in range(n)] for t, n in sizes.items()}
    if owes:
        await store.saf_put(new_item(SafKind.ADVICE, sales["T-W"][0].id, NOW))
    for terminal in sizes:
        await store.close_batch(terminal, NOW + 1)
    order = [b.terminal_id for b in await store.closed_batches(10)]

    reads: list[int] = []
    pages: list[tuple[str, str]] = []
    get_transactions, batch_items_page = store.get_transactions, store.batch_items_page

    async def counted_reads(ids):  # type: ignore[no-untyped-def]
        reads.append(len(ids))
        return await get_transactions(ids)

    async def counted_pages(terminal, batch_no, after, limit):  # type: ignore[no-untyped-def]
        pages.append((terminal, after))
        return await batch_items_page(terminal, batch_no, after, limit)

    monkeypatch.setattr(store, "get_transactions", counted_reads)
    monkeypatch.setattr(store, "batch_items_page", counted_pages)
    result = await run_cutoff(store, TOPOLOGY, directory=tmp_path / "files", steps=["clear"])

    lines = [json.loads(x) for x in result.files[ACQ].read_text().splitlines()]
    presented = [r["transaction_id"] for r in lines if r.get("kind") == "CAPTURE"]
    expected = [
        tx.id
        for t in order
        if t != "T-W" or not owes
        for tx in sorted(sales[t], key=lambda tx: tx.id)
    ]
    assert presented == expected  # batch order, item order: as an unpaged run writes them
    full = [3, 3, 3, 1] if owes else [3, 3, 3, 3]  # 10 (12) sales in full pages across batches
    assert [n for n in reads if n] == full
    # Each page of each batch read once (T-A and T-C: two pages of 3), for the stand-in check
    # and the records both.
    second = [(t, sorted(tx.id for tx in sales[t])[2]) for t in ("T-A", "T-C")]
    assert sorted(pages) == sorted([(t, "") for t in sizes] + second)
    states = {t: next(b.state for b in await store.batches_of(t) if b.batch_no == 1) for t in sizes}
    assert states == {
        "T-A": BatchState.CLEARED,
        "T-B": BatchState.CLEARED,
        "T-C": BatchState.CLEARED,
        # waits whole for its advice, none of its records written
        "T-W": BatchState.CLOSED if owes else BatchState.CLEARED,
    }
