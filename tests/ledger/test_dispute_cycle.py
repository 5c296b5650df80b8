"""Disputes: the issuer charges back a settled sale (its books and its outgoing file), the switch
ingests it, records the dispute and posts the compensating entries; the merchant represents
(through the real ``payswitch-dispute`` CLI process); the issuer's answer resolves it (won:
re-credited; lost: stays). Deadlines, idempotent ingestion, refusals, repair after a crash."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from ledgerkit import DAY0, captured, settled_sale

from issuer.books import APPROVED, Books
from issuer.chargebacks import answer_representment, outgoing_file, raise_chargeback
from payswitch.world.topology import AccountConfig, CardConfig
from switch.backoffice.disputes.cycle import DAY_S, POSTINGS
from switch.backoffice.disputes.service import DisputeRejected, Disputes
from switch.backoffice.ledger import Ledger
from switch.backoffice.ledger import accounts as ac
from switch.domain.ledger import DisputeChanges, DisputeState

CARD = CardConfig("4111111111111111", "2812", "A-1")
MERCHANT = ac.merchant_payable("M001")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def books(tmp_path: Path):
    b = Books(tmp_path / "ISS1.db")
    b.seed([AccountConfig("A-1", "EUR", 1_000_000)])
    yield b
    b.close()


async def sale_everywhere(store, ledger: Ledger, books: Books, amount: int = 10_000, **kw):
    """A settled sale in the switch and the same RRN posted in the issuer's books."""
    tx = await settled_sale(store, ledger, **{"amount_minor": amount, **kw})
    decision = books.authorize(tx.rrn, CARD, amount, "EUR", "2812", date(2027, 1, 15))
    assert decision.response_code == APPROVED
    assert books.capture(tx.rrn, tx.captured_minor, "EUR") == APPROVED
    return tx


async def chargeback(store, ledger, books, tmp_path, reason="10.4", amount=None):
    tx = await sale_everywhere(store, ledger, books)
    rec = raise_chargeback(books, tmp_path, "ISS1", tx.rrn, reason, amount_minor=amount,
                           raised_at=DAY0 + DAY_S)  # fmt: skip
    disputes = Disputes(store, ledger)
    result = await disputes.ingest_dir(tmp_path, now=DAY0 + DAY_S + 60)
    assert result.created == [rec["chargeback_id"]] and not result.rejected
    return tx, rec, disputes


def cli(store_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "switch.cli.disputes", "--store", store_url, *args],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


async def test_chargeback_debits_the_merchant_and_credits_the_cardholder(
    store, ledger, books, tmp_path
) -> None:
    before = books.account("A-1").balance
    tx, rec, _ = await chargeback(store, ledger, books, tmp_path, amount=4_000)
    d = await store.dispute_get(rec["chargeback_id"])
    assert (d.state, d.amount_minor, d.reason_code, d.transaction_id) == (
        DisputeState.CHARGEBACK, 4_000, "10.4", tx.id,
    )  # fmt: skip
    assert d.representment_due == DAY0 + DAY_S + 30 * DAY_S
    assert books.account("A-1").balance == before - 10_000 + 4_000  # sale, then chargeback
    fees = (
        ledger.settlement_event(tx).interchange_minor + ledger.settlement_event(tx).scheme_fee_minor
    )
    assert await ledger.balance(MERCHANT, "EUR") == -(10_000 - fees - 4_000)
    assert (await ledger.trial_balance("EUR")).total == 0
    line = json.loads(outgoing_file(tmp_path, "ISS1", DAY0 + DAY_S).read_text().splitlines()[0])
    assert line["rrn"] == tx.rrn and "pan" not in json.dumps(line).lower()


async def test_ingesting_again_records_and_posts_nothing_new(store, ledger, books, tmp_path):
    _, rec, disputes = await chargeback(store, ledger, books, tmp_path)
    raise_chargeback(books, tmp_path, "ISS1", rec["rrn"], "10.4",
                     chargeback_id=rec["chargeback_id"], raised_at=DAY0 + DAY_S)  # fmt: skip
    lines_before = len(await store.ledger_entries("EUR"))
    again = await disputes.ingest_dir(tmp_path, now=DAY0 + DAY_S + 120)
    assert again.repeated == [rec["chargeback_id"]] and again.created == []
    assert len(outgoing_file(tmp_path, "ISS1", DAY0 + DAY_S).read_text().splitlines()) == 1
    assert len(await store.ledger_entries("EUR")) == lines_before
    assert len(await store.disputes()) == 1


async def test_full_cycle_won_through_the_cli(store, ledger, books, tmp_path, store_url) -> None:
    before = books.account("A-1").balance
    _tx, rec, disputes = await chargeback(store, ledger, books, tmp_path)
    payable_before_cb = await ledger.balance(MERCHANT, "EUR", as_of=DAY0 + DAY_S)
    done = await asyncio.to_thread(
        cli, store_url, "represent", rec["chargeback_id"], "--evidence", "signed receipt #42"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "REPRESENTED"
    d = await store.dispute_get(rec["chargeback_id"])
    assert d.evidence == "signed receipt #42" and d.response_due > d.updated_at
    assert await ledger.balance(ac.chargeback_suspense("ACQ1"), "EUR") == -10_000
    answer_representment(books, tmp_path, "ISS1", rec["chargeback_id"], accept=True)
    result = await disputes.ingest_dir(tmp_path)
    assert result.resolved == [rec["chargeback_id"]]
    assert (await store.dispute_get(rec["chargeback_id"])).state is DisputeState.WON
    assert await ledger.balance(MERCHANT, "EUR") == payable_before_cb  # re-credited
    assert await ledger.balance(ac.chargeback_suspense("ACQ1"), "EUR") == 0
    assert (await ledger.trial_balance("EUR")).total == 0
    assert books.account("A-1").balance == before - 10_000  # cardholder debited again
    listing = await asyncio.to_thread(cli, store_url, "list")
    assert rec["chargeback_id"] in listing.stdout and "WON" in listing.stdout


async def test_full_cycle_lost(store, ledger, books, tmp_path) -> None:
    before = books.account("A-1").balance
    _tx, rec, disputes = await chargeback(store, ledger, books, tmp_path)
    after_cb = await ledger.balance(MERCHANT, "EUR")
    await disputes.represent(rec["chargeback_id"], "delivery proof", now=DAY0 + 3 * DAY_S)
    answer_representment(books, tmp_path, "ISS1", rec["chargeback_id"], accept=False)
    await disputes.ingest_dir(tmp_path, now=DAY0 + 4 * DAY_S)
    d = await store.dispute_get(rec["chargeback_id"])
    assert d.state is DisputeState.LOST
    assert await ledger.balance(MERCHANT, "EUR") == after_cb  # the chargeback stays
    assert await ledger.balance(ac.chargeback_suspense("ACQ1"), "EUR") == 0
    assert (await ledger.trial_balance("EUR")).total == 0
    assert books.account("A-1").balance == before  # the sale was charged back
    with pytest.raises(DisputeRejected):
        await disputes.represent(rec["chargeback_id"], "again")


async def test_missed_deadlines_resolve_per_the_rules(store, ledger, books, tmp_path) -> None:
    _, first, disputes = await chargeback(store, ledger, books, tmp_path)
    sale2 = await sale_everywhere(store, ledger, books, 5_000)
    second = raise_chargeback(books, tmp_path, "ISS1", sale2.rrn, "13.1", raised_at=DAY0 + DAY_S)
    await disputes.ingest_dir(tmp_path, now=DAY0 + DAY_S + 60)
    await disputes.represent(second["chargeback_id"], "tracking number", now=DAY0 + 2 * DAY_S)
    assert await disputes.expire(now=DAY0 + 30 * DAY_S) == []  # nothing due yet
    moved = await disputes.expire(now=DAY0 + 33 * DAY_S)
    states = {d.dispute_id: d.state for d in moved}
    assert states == {
        first["chargeback_id"]: DisputeState.ACCEPTED,  # merchant never represented
        second["chargeback_id"]: DisputeState.WON,  # issuer never answered
    }
    with pytest.raises(DisputeRejected):
        await disputes.represent(first["chargeback_id"], "too late", now=DAY0 + 34 * DAY_S)
    assert (await ledger.trial_balance("EUR")).total == 0


async def test_chargebacks_the_cycle_refuses(store, ledger, books, tmp_path) -> None:
    sale = await sale_everywhere(store, ledger, books)
    unsettled = await captured(store)
    await ledger.on_presented(unsettled)
    base = {"record": "chargeback", "issuer_id": "ISS1", "currency": "EUR",
            "reason_code": "10.4", "raised_at": DAY0, "amount_minor": 100}  # fmt: skip
    cases = {
        "cb-unknown": {**base, "rrn": "999999999999"},
        "cb-unsettled": {**base, "rrn": unsettled.rrn},
        "cb-too-much": {**base, "rrn": sale.rrn, "amount_minor": 10_001},
        "cb-mc-code": {**base, "rrn": sale.rrn, "reason_code": "4837"},
        "cb-currency": {**base, "rrn": sale.rrn, "currency": "JPY"},
    }
    result = await Disputes(store, ledger).ingest(
        [{**rec, "chargeback_id": cb} for cb, rec in cases.items()], now=DAY0
    )
    assert sorted(cb for cb, _ in result.rejected) == sorted(cases)
    assert await store.disputes() == []
    assert all(p.kind != "CHARGEBACK" for p in await store.ledger_postings_for_rrn(sale.rrn))


async def test_a_state_without_its_posting_is_repaired_once(store, ledger, books, tmp_path):
    """A crash between the state change and its posting: sync_postings posts what is missing."""
    _, rec, disputes = await chargeback(store, ledger, books, tmp_path)
    await store.dispute_transition(
        rec["chargeback_id"], DisputeState.CHARGEBACK, DisputeState.REPRESENTED,
        DisputeChanges(evidence="x", response_due=DAY0 + 90 * DAY_S, updated_at=DAY0 + 2 * DAY_S),
    )  # fmt: skip
    assert await disputes.sync_postings() == 1
    assert await disputes.sync_postings() == 0
    kinds = [p.kind for p in await store.ledger_postings_for_rrn(rec["rrn"])]
    assert kinds.count("REPRESENTMENT") == 1
    assert POSTINGS[DisputeState.REPRESENTED][-1].value == "REPRESENTMENT"
