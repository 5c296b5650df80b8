"""Stand-in sales reach the merchant, end to end, every node a real process (SQLite store).

Both acquirers are stopped: the switch approves two sales in stand-in. The merchant captures
the first at once (a local completion: the network is down) and a cut-off runs during the
outage: the batch closes but is not presented (its stand-in sale has no advice at the issuer
yet). The acquirers come back: both advices land and place holds at bank-a (the captured sale
stays CAPTURED; the other becomes ADVISED); the second is voided (the advice's reversal
releases its hold). The next cut-off presents the waiting batch: bank-a posts the capture
against the advice's hold exactly once, the acquirer settles it with fees, the transaction is
SETTLED, the ledger's merchant payable includes it and the reconciliation is clean.
"""

import asyncio
import math
import signal
import sqlite3
import time
import tomllib
from contextlib import closing

import grpc
import pytest

from payswitch.settlement.fees import fee_for
from payswitch.v1 import network_pb2, terminal_pb2
from switch.backoffice.ledger import accounts as ac
from switch.backoffice.ledger.ledger import Ledger
from switch.backoffice.recon.engine import reconcile
from switch.backoffice.recon.sources import load_reports, read_books, switch_transactions
from switch.domain.batches import BatchState, ItemKind
from switch.domain.transactions import TxState
from switch.store import open_store

from .clients import Books, RawTerminal, code, node_channels
from .conftest import DEFAULT_TOPOLOGY, injected, start_stack

pytestmark = pytest.mark.e2e

VISA = "4111111111111111"  # bank-a A-1001, EUR
SAF = {
    "max_attempts": 1000,
    "base_delay_s": 0.2,
    "max_delay_s": 1.0,
    "attempt_timeout_s": 1.0,
    "lease_s": 3.0,
    "poll_interval_s": 0.2,
}


async def until(check, timeout: float = 60.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(every)


@pytest.fixture(scope="module")
async def world(tmp_path_factory, hsm_token):
    run_dir = tmp_path_factory.mktemp("standin-clearing")
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    doc["breaker"].update(open_s=1)
    doc["standin"].update(
        enabled=True, floor={"EUR": 5000}, cumulative={"EUR": 20000}, advice_interval_s=0.5
    )
    doc["settlement"]["dir"] = str(run_dir / "settlement")
    doc["saf"] = SAF
    stack = await asyncio.to_thread(start_stack, run_dir, doc, store="sqlite")
    channels = node_channels(stack)
    pos = RawTerminal(channels[stack.topology.switch.id], await injected())
    books = Books({i.id: channels[i.id] for i in stack.topology.issuers})
    yield stack, pos, books, run_dir
    for ch in channels.values():
        await ch.close()
    await asyncio.to_thread(stack.stop)


def _presentments(run_dir, rrn: str) -> int:
    with closing(sqlite3.connect(run_dir / "books" / "bank-a.db")) as db:
        return db.execute("SELECT count(*) FROM presentments WHERE rrn = ?", (rrn,)).fetchone()[0]


async def test_a_stand_in_sale_is_captured_cleared_settled_and_reconciled(world) -> None:
    stack, pos, books, run_dir = world
    switch = stack.topology.switch.id
    before = await books.account("bank-a", "A-1001")
    stack.kill("acq-alpha")
    stack.kill("acq-beta")
    sale = await pos.pay(VISA, 3_000)
    other = await pos.pay(VISA, 1_200)
    assert code(sale) == code(other) == "00" and sale.stood_in and other.stood_in
    # Captured during the outage, before its advice: a local completion.
    captured = await pos.capture(sale.transaction_id, 2_500)
    assert code(captured) == "00", captured.message
    assert captured.transaction.state == terminal_pb2.TRANSACTION_STATE_CAPTURED

    # A cut-off during the outage: the batch closes, but waits for the advice to be cleared.
    stack.kill(switch, signal.SIGUSR1, wait=False)
    async with open_store(stack.store_url) as store:

        async def closed():
            for info in await store.batches_of("T-0001"):
                items = await store.batch_items("T-0001", info.batch_no)
                if any(i.transaction_id == sale.transaction_id for i in items):
                    return info
            return None

        waiting = await until(closed)
        clearing = run_dir / "settlement" / "clearing"
        await until(lambda: _files_written(clearing))
        assert waiting.state is BatchState.CLOSED
        assert sale.transaction_id not in _clearing_text(clearing)
        assert (await store.get_transaction(sale.transaction_id)).state is TxState.CAPTURED

    await asyncio.to_thread(stack.restart, "acq-alpha")
    await asyncio.to_thread(stack.restart, "acq-beta")

    async def advised():
        try:
            h1 = await books.hold("bank-a", sale.rrn)
        except grpc.aio.AioRpcError:
            return False  # NOT_FOUND: the advice has not reached bank-a yet
        other_tx = await pos.get(other.transaction_id)
        return (
            h1.state == network_pb2.HOLD_STATE_HELD
            and other_tx.state == terminal_pb2.TRANSACTION_STATE_ADVISED
        )

    await until(advised)
    assert (await pos.get(sale.transaction_id)).state == terminal_pb2.TRANSACTION_STATE_CAPTURED
    acct = await books.account("bank-a", "A-1001")
    assert (acct.balance, acct.held) == (before.balance, before.held + 4_200)  # two holds

    # Voiding the advised stand-in reverses its advice: its hold is released.
    voided = await pos.void(other.transaction_id)
    assert code(voided) == "00", voided.message
    assert voided.transaction.state == terminal_pb2.TRANSACTION_STATE_VOIDED
    assert (await books.hold("bank-a", other.rrn)).state == network_pb2.HOLD_STATE_RELEASED

    # The next cut-off presents the waiting batch; bank-a posts against the advice's hold.
    stack.kill(switch, signal.SIGUSR1, wait=False)

    async def settled():
        tx = await pos.get(sale.transaction_id)
        return tx.state == terminal_pb2.TRANSACTION_STATE_SETTLED

    await until(settled, timeout=90)
    hold = await books.hold("bank-a", sale.rrn)
    assert (hold.state, hold.posted) == (network_pb2.HOLD_STATE_POSTED, 2_500)
    assert _presentments(run_dir, sale.rrn) == 1  # posted once
    acct = await books.account("bank-a", "A-1001")
    assert (acct.balance, acct.held) == (before.balance - 2_500, before.held)

    fees = fee_for(stack.topology.fees, "visa", "5411", "EUR", 2_500)
    async with open_store(stack.store_url) as store:
        ledger = Ledger(store)

        async def posted():
            balances = await ledger.balances("EUR")
            return not any(
                v for a, v in balances.items() if a.startswith("acquirer_receivable:")
            ) and balances.get(ac.merchant_payable("M-GROCER"))

        await until(posted)
        payable = await ledger.balance(ac.merchant_payable("M-GROCER"), "EUR")
        assert -payable == 2_500 - fees.total_minor
        voids = [
            i.transaction_id
            for info in await store.batches_of("T-0001")
            for i in await store.batch_items("T-0001", info.batch_no)
            if i.kind is ItemKind.VOID
        ]
        assert voids == [other.transaction_id]
        txs = await switch_transactions(store, math.inf)
    reports = await asyncio.to_thread(load_reports, run_dir / "settlement")
    entries = [e for r in reports for e in r["entries"] if e["rrn"] == sale.rrn]
    assert [(e["status"], e["amount_minor"]) for e in entries] == [("SETTLED", 2_500)]
    issuer_books = read_books(sorted((run_dir / "books").glob("*.db")))
    assert reconcile(txs, reports, issuer_books, cutoff=math.inf) == []


async def _files_written(clearing) -> bool:
    return any(clearing.glob("*/*.jsonl"))


def _clearing_text(clearing) -> str:
    return "".join(p.read_text() for p in clearing.glob("*/*.jsonl"))
