"""A small consistent day on all three sides, for the reconciliation tests: the switch's store,
the acquirer's settlement report (entries priced by the fee table) and the issuer's books
(real ``issuer.books``). Each test mutates exactly one side."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ledgerkit import DAY0, FEES, approved, captured, refund_of

from issuer.books import APPROVED, Books
from payswitch.settlement.fees import presentment_fees
from payswitch.world.topology import AccountConfig, CardConfig
from switch.domain.transactions import Transaction, TxState
from switch.store.base import Store

EUR_CARD = CardConfig("4111111111111111", "2812", "A-EUR")
KWD_CARD = CardConfig("4000000000000002", "2812", "A-KWD")
TODAY = date(2027, 1, 15)


@dataclass
class Day:
    sales: dict[str, Transaction]
    report: dict
    books_path: Path

    def entry(self, name: str) -> dict:
        rrn = self.sales[name].rrn
        return next(e for e in self.report["entries"] if e["rrn"] == rrn)

    def reports(self) -> list[dict]:
        return [copy.deepcopy(self.report)]


def _entry(tx: Transaction, kind: str, amount: int) -> dict:
    fees = presentment_fees(FEES, kind, tx.scheme, tx.mcc, tx.currency, amount)
    return {
        "transaction_id": tx.id, "rrn": tx.rrn, "kind": kind, "amount_minor": amount,
        "currency": tx.currency, "interchange_minor": fees.interchange_minor,
        "scheme_fee_minor": fees.scheme_fee_minor, "status": "SETTLED", "reason": "",
    }  # fmt: skip


async def build_day(store: Store, tmp: Path) -> Day:
    s1 = await captured(store, amount_minor=10_000)
    s2 = await captured(store, 5_000, amount_minor=8_000)  # partial capture
    s3 = await captured(store, amount_minor=1_250, currency="KWD")
    r1 = await refund_of(store, s1, 2_000)
    v1 = await approved(store, amount_minor=3_000)
    v1 = await store.transition(v1.id, TxState.APPROVED, TxState.VOIDED)
    a1 = await approved(store, amount_minor=700)  # authorized, never captured
    for tx in (s1, s2, s3):
        await store.transition(tx.id, TxState.CAPTURED, TxState.SETTLED)

    books = Books(tmp / "ISS1.db")
    try:
        books.seed(
            [AccountConfig("A-EUR", "EUR", 1_000_000), AccountConfig("A-KWD", "KWD", 1_000_000)]
        )
        for tx in (s1, s2, s3, v1, a1):
            card = KWD_CARD if tx.currency == "KWD" else EUR_CARD
            decision = books.authorize(tx.rrn, card, tx.amount_minor, tx.currency, "2812", TODAY)
            assert decision.response_code == APPROVED
        for tx in (s1, s2, s3):
            captured_minor = (await store.get_transaction(tx.id)).captured_minor
            assert books.capture(tx.rrn, captured_minor, tx.currency) == APPROVED
        assert books.refund(r1.rrn, s1.rrn, 2_000, "EUR") == APPROVED
        assert books.reverse(v1.rrn) == APPROVED
    finally:
        books.close()

    entries = [_entry(s1, "CAPTURE", 10_000), _entry(s2, "CAPTURE", 5_000),
               _entry(s3, "CAPTURE", 1_250), _entry(r1, "REFUND", 2_000)]  # fmt: skip
    report = {
        "format": "payswitch-settlement/1", "acquirer_id": "ACQ1", "file_id": "ACQ1-20270115-1",
        "settled_at": DAY0 + 86_400, "entries": entries, "totals": {},
    }  # fmt: skip
    sales = {"s1": s1, "s2": s2, "s3": s3, "r1": r1, "v1": v1, "a1": a1}
    return Day(sales, report, tmp / "ISS1.db")
