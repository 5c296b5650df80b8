"""Reconciliation finds exactly what was injected: a small consistent day on all three sides
reconciles clean; each test then mutates one side with one discrepancy and the report lists
exactly that issue (type, kind, RRN)."""

from __future__ import annotations

import copy
import math
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from ledgerkit import DAY0, FEES, new_tx
from reconkit import EUR_CARD, Day, build_day

from issuer.books import APPROVED, Books
from issuer.chargebacks import raise_chargeback
from switch.backoffice.disputes.service import Disputes
from switch.backoffice.recon.engine import reconcile
from switch.backoffice.recon.sources import read_books, switch_transactions
from switch.domain.transactions import Changes, TxState, TxType

CUTOFF = DAY0 + 3_600


@pytest.fixture
async def day(store, tmp_path: Path) -> Day:
    return await build_day(store, tmp_path)


async def found(store, day: Day, reports=None, txs=None) -> list[tuple[str, str, str]]:
    txs = await switch_transactions(store, math.inf) if txs is None else txs
    books = read_books([day.books_path])
    reports = day.reports() if reports is None else reports
    disputes = await store.disputes()
    issues = reconcile(txs, reports, books, cutoff=CUTOFF, fee_table=FEES, disputes=disputes)
    return [(i.type, i.kind, i.rrn) for i in issues]


async def test_a_consistent_day_reconciles_clean(store, day: Day) -> None:
    assert await found(store, day) == []


async def test_missing_in_switch(store, day: Day) -> None:
    """The switch lost a sale both other sides have: one issue, both sources named."""
    txs = [t for t in await switch_transactions(store, math.inf) if t.id != day.sales["s2"].id]
    books = read_books([day.books_path])
    [issue] = reconcile(txs, day.reports(), books, cutoff=CUTOFF, fee_table=FEES)
    assert (issue.type, issue.kind, issue.rrn) == (
        "MISSING_IN_SWITCH",
        "CAPTURE",
        day.sales["s2"].rrn,
    )
    assert '"sources": ["acquirer", "issuer"]' in issue.detail


async def test_missing_in_switch_from_the_report(store, day: Day) -> None:
    reports = day.reports()
    extra = dict(day.entry("s1"), rrn="888888888888", transaction_id="tx-unknown")
    reports[0]["entries"].append(extra)
    assert await found(store, day, reports) == [("MISSING_IN_SWITCH", "CAPTURE", "888888888888")]


async def test_missing_at_acquirer(store, day: Day) -> None:
    reports = day.reports()
    reports[0]["entries"] = [e for e in reports[0]["entries"] if e["rrn"] != day.sales["s2"].rrn]
    assert await found(store, day, reports) == [
        ("MISSING_AT_ACQUIRER", "CAPTURE", day.sales["s2"].rrn)
    ]


async def test_missing_at_issuer(store, day: Day) -> None:
    rrn = day.sales["r1"].rrn
    with closing(sqlite3.connect(day.books_path)) as db, db:  # the refund advice is lost
        db.execute("DELETE FROM advices WHERE kind = 'refund' AND rrn = ?", (rrn,))
    assert await found(store, day) == [("MISSING_AT_ISSUER", "REFUND", rrn)]


async def test_amount_mismatch(store, day: Day) -> None:
    reports = day.reports()
    next(e for e in reports[0]["entries"] if e["rrn"] == day.sales["s3"].rrn)["amount_minor"] = (
        1_205
    )
    assert await found(store, day, reports) == [("AMOUNT_MISMATCH", "CAPTURE", day.sales["s3"].rrn)]


async def test_duplicate(store, day: Day) -> None:
    reports = day.reports()
    second = copy.deepcopy(reports[0])
    second["file_id"] = "ACQ1-20270115-2"
    second["entries"] = [day.entry("r1")]
    assert await found(store, day, [*reports, second]) == [
        ("DUPLICATE", "REFUND", day.sales["r1"].rrn)
    ]


async def test_late_presentment(store, day: Day) -> None:
    reports = day.reports()
    late = copy.deepcopy(reports[0])
    late["file_id"], late["settled_at"] = "ACQ1-20270125-1", DAY0 + 10 * 86_400
    late["entries"] = [day.entry("s2")]
    reports[0]["entries"] = [e for e in reports[0]["entries"] if e["rrn"] != day.sales["s2"].rrn]
    assert await found(store, day, [*reports, late]) == [
        ("LATE_PRESENTMENT", "CAPTURE", day.sales["s2"].rrn)
    ]


async def test_orphan_reversal(store, day: Day) -> None:
    books = Books(day.books_path)
    try:
        books.reverse("999999999999")  # a reversal of an authorization the switch never had
    finally:
        books.close()
    assert await found(store, day) == [("ORPHAN_REVERSAL", "REVERSAL", "999999999999")]


async def test_rejected_by_acquirer(store, day: Day) -> None:
    reports = day.reports()
    entry = next(e for e in reports[0]["entries"] if e["rrn"] == day.sales["s1"].rrn)
    entry["status"], entry["reason"] = "REJECTED", "expired authorization"
    assert await found(store, day, reports) == [
        ("REJECTED_BY_ACQUIRER", "CAPTURE", day.sales["s1"].rrn)
    ]


async def test_fee_mismatch(store, day: Day) -> None:
    reports = day.reports()
    next(e for e in reports[0]["entries"] if e["rrn"] == day.sales["s1"].rrn)[
        "interchange_minor"
    ] += 1
    assert await found(store, day, reports) == [("FEE_MISMATCH", "CAPTURE", day.sales["s1"].rrn)]


async def test_a_void_the_issuer_never_released(store, day: Day) -> None:
    with closing(sqlite3.connect(day.books_path)) as db, db:
        db.execute("UPDATE authorizations SET state = 'HELD' WHERE rrn = ?", (day.sales["v1"].rrn,))
        db.execute("DELETE FROM advices WHERE kind = 'reversal'")
    assert await found(store, day) == [("MISSING_AT_ISSUER", "REVERSAL", day.sales["v1"].rrn)]


async def test_a_chargeback_the_switch_has_not_recorded(store, ledger, day: Day, tmp_path) -> None:
    s1 = day.sales["s1"]
    books = Books(day.books_path)
    try:
        rec = raise_chargeback(books, tmp_path, "ISS1", s1.rrn, "13.1", raised_at=DAY0 + 86_400)
    finally:
        books.close()
    assert await found(store, day) == [("MISSING_IN_SWITCH", "CHARGEBACK", s1.rrn)]
    await ledger.on_presented(await store.get_transaction(s1.id))
    result = await Disputes(store, ledger).ingest_dir(tmp_path, now=DAY0 + 2 * 86_400)
    assert result.created == [rec["chargeback_id"]]
    assert await found(store, day) == []  # recorded: the sides agree again


async def _advised(store, day: Day, amount: int, *, advise_issuer: bool = True):
    """A stand-in approval the switch advised (ADVISED) and the issuer posted (its advice)."""
    tx = new_tx(amount_minor=amount)
    await store.insert_transaction(tx)
    await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING, Changes(acquirer_id="ACQ1"))
    await store.transition(tx.id, TxState.PENDING, TxState.STOOD_IN, Changes(auth_code="S00001"))
    tx = await store.transition(tx.id, TxState.STOOD_IN, TxState.ADVISED)
    if advise_issuer:
        books = Books(day.books_path)
        try:
            assert books.advise(tx.rrn, EUR_CARD, amount, "EUR", "S00001") == APPROVED
        finally:
            books.close()
    return tx


async def test_an_advised_stand_in_matches_the_issuers_posting(store, day: Day) -> None:
    """Posted by the advice, never presented: neither MISSING_IN_SWITCH nor a missing report."""
    await _advised(store, day, 3_000)
    assert await found(store, day) == []


async def test_a_stand_in_the_issuer_never_got(store, day: Day) -> None:
    tx = await _advised(store, day, 3_000, advise_issuer=False)
    assert await found(store, day) == [("MISSING_AT_ISSUER", "STANDIN", tx.rrn)]


async def test_a_stand_in_advice_the_switch_does_not_know(store, day: Day) -> None:
    tx = await _advised(store, day, 3_000)
    txs = [t for t in await switch_transactions(store, math.inf) if t.id != tx.id]
    assert await found(store, day, txs=txs) == [("MISSING_IN_SWITCH", "STANDIN", tx.rrn)]


async def _refund_reversed_by_the_switch(store, day: Day, *, issuer_reversed: bool):
    """A second refund of s1 whose answer never came: the switch holds it REVERSED; the
    issuer credited it and, if ``issuer_reversed``, took the credit back on the reversal."""
    s1 = day.sales["s1"]
    tx = new_tx(
        type=TxType.REFUND, amount_minor=1_500, currency="EUR", merchant_id=s1.merchant_id,
        scheme=s1.scheme, mcc=s1.mcc, original_id=s1.id,
    )  # fmt: skip
    await store.insert_transaction(tx)
    await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING, Changes(acquirer_id="ACQ1"))
    await store.transition(tx.id, TxState.PENDING, TxState.UNKNOWN)
    await store.transition(tx.id, TxState.UNKNOWN, TxState.REVERSAL_PENDING)
    await store.transition(tx.id, TxState.REVERSAL_PENDING, TxState.REVERSED)
    books = Books(day.books_path)
    try:
        assert books.refund(tx.rrn, s1.rrn, 1_500, "EUR") == APPROVED
        if issuer_reversed:
            assert books.reverse(tx.rrn) == APPROVED
    finally:
        books.close()
    return tx


async def test_a_refund_reversed_on_both_sides_is_no_issue(store, day: Day) -> None:
    """Campaign seed 3026: a refund answered 96 (another switch's recovery reversed it first)
    that the issuer credited and then took back was MISSING_IN_SWITCH and ORPHAN_REVERSAL."""
    await _refund_reversed_by_the_switch(store, day, issuer_reversed=True)
    assert await found(store, day) == []


async def test_a_refund_reversed_at_the_switch_only_is_missing_at_the_issuer(
    store, day: Day
) -> None:
    tx = await _refund_reversed_by_the_switch(store, day, issuer_reversed=False)
    assert await found(store, day) == [("MISSING_AT_ISSUER", "REVERSAL", tx.rrn)]
