"""Posting rules and the Ledger: every event balanced, replay posts nothing, mixed currencies
refused, balances as of any time, fees from the fee table (half-up rounding)."""

from __future__ import annotations

import dataclasses

import pytest
from ledgerkit import DAY0, FEES, captured, refund_of, settled_sale

from payswitch.settlement.fees import Fees, fee_for
from switch.backoffice.ledger import Event, EventKind, Ledger
from switch.backoffice.ledger import accounts as ac
from switch.backoffice.ledger.rules import lines_for
from switch.domain.ledger import LedgerLine, LedgerPosting, UnbalancedPosting


def event(kind: EventKind, amount: int = 10_000, **kw: object) -> Event:
    base = dict(
        kind=kind, transaction_id="tx-1", sequence="0", merchant_id="M1", acquirer_id="ACQ1",
        scheme="visa", amount_minor=amount, currency="EUR", occurred_at=DAY0, rrn="000000000001",
        interchange_minor=25, scheme_fee_minor=10,
    )  # fmt: skip
    base.update(kw)
    return Event(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_rule_balances_in_one_currency(kind: EventKind) -> None:
    lines = lines_for(event(kind, currency="KWD"))
    assert len(lines) >= 2
    assert sum(x.amount_minor for x in lines) == 0
    assert {x.currency for x in lines} == {"KWD"}


def test_settlement_charges_fees_to_the_merchant_and_clears_the_receivable() -> None:
    presented = dict(
        (x.account, x.amount_minor) for x in lines_for(event(EventKind.CAPTURE_PRESENTED))
    )
    settled = dict((x.account, x.amount_minor) for x in lines_for(event(EventKind.CAPTURE_SETTLED)))
    assert presented[ac.merchant_payable("M1")] + settled[ac.merchant_payable("M1")] == -(
        10_000 - 35
    )
    assert presented[ac.acquirer_receivable("ACQ1")] + settled[ac.acquirer_receivable("ACQ1")] == 0
    assert settled[ac.settlement_cash("ACQ1")] == 10_000 - 35
    assert settled[ac.interchange_expense("visa")] == 25
    assert settled[ac.MERCHANT_FEE_INCOME] == -35


def test_refund_settlement_pays_out_gross_plus_fees() -> None:
    settled = dict(
        (x.account, x.amount_minor) for x in lines_for(event(EventKind.REFUND_SETTLED, 2_000))
    )
    assert settled[ac.settlement_cash("ACQ1")] == -(2_000 + 35)
    assert settled[ac.merchant_payable("M1")] == 35


def test_negative_amounts_are_refused() -> None:
    with pytest.raises(UnbalancedPosting):
        lines_for(event(EventKind.CAPTURE_PRESENTED, -5))


def test_fee_for_rounds_half_up_and_prefers_the_exact_mcc() -> None:
    assert fee_for(FEES, "visa", "5411", "EUR", 12_345) == Fees(
        25 + 5, 12
    )  # 24.69 -> 25, 12.345 -> 12
    assert fee_for(FEES, "visa", "5411", "EUR", 2_500) == Fees(5 + 5, 3)  # 5.0, 2.5 -> 3
    assert fee_for(FEES, "visa", "5812", "EUR", 10_000) == Fees(50, 10)
    assert fee_for(FEES, "visa", "5411", "JPY", 999) == Fees(15, 1)  # 14.985 -> 15, 1.4985 -> 1
    assert fee_for(FEES, "VISA", "5411", "EUR", 2_500) == Fees(10, 3)  # brand in any case
    assert fee_for(FEES, "amex", "5411", "EUR", 100) == Fees(0, 0)  # no rule: no fees


async def test_replaying_an_event_posts_nothing_new(store, ledger: Ledger) -> None:
    e = event(EventKind.CAPTURE_PRESENTED)
    assert await ledger.post(e)
    assert not await ledger.post(dataclasses.replace(e, occurred_at=DAY0 + 60))
    assert len(await store.ledger_entries("EUR")) == 2
    assert await ledger.post(dataclasses.replace(e, sequence="1"))  # another event
    assert len(await store.ledger_entries("EUR")) == 4


async def test_a_mixed_currency_posting_is_refused(store) -> None:
    mixed = LedgerPosting(
        "x/1", "x", "MANUAL", "", "EUR", DAY0,
        (LedgerLine("a", "EUR", 100), LedgerLine("b", "JPY", -100)),
    )  # fmt: skip
    with pytest.raises(UnbalancedPosting):
        await store.ledger_post(mixed)
    assert await store.ledger_currencies() == []


async def test_balances_as_of_any_time(store, ledger: Ledger) -> None:
    await ledger.post(event(EventKind.CAPTURE_PRESENTED, occurred_at=DAY0))
    await ledger.post(event(EventKind.CAPTURE_SETTLED, occurred_at=DAY0 + 86_400))
    m = ac.merchant_payable("M1")
    assert await ledger.balance(m, "EUR", as_of=DAY0 - 1) == 0
    assert await ledger.balance(m, "EUR", as_of=DAY0 + 10) == -10_000
    assert await ledger.balance(m, "EUR", as_of=DAY0 + 86_400) == -(10_000 - 35)
    for as_of in (DAY0, DAY0 + 86_400, None):
        assert (await ledger.trial_balance("EUR", as_of)).total == 0


async def test_sales_and_refunds_from_the_store_post_with_table_fees(store, ledger: Ledger) -> None:
    sale = await settled_sale(store, ledger, 8_000, amount_minor=10_000)  # partial capture
    refund = await refund_of(store, sale, 3_000)
    await ledger.on_presented(refund)
    await ledger.on_settled(refund)
    await captured(store)  # captured, not yet presented: nothing in the ledger
    # A refund carries no fees (the acquirer's report charges none: presentment_fees).
    fees = fee_for(FEES, "visa", "5411", "EUR", 8_000).total_minor
    assert fees > 0 and fee_for(FEES, "visa", "5411", "EUR", 3_000).total_minor > 0
    balances = await ledger.balances("EUR")
    assert balances[ac.merchant_payable("M001")] == -(8_000 - 3_000 - fees)
    assert balances[ac.acquirer_receivable("ACQ1")] == 0
    assert balances[ac.settlement_cash("ACQ1")] == 8_000 - 3_000 - fees
    assert sum(balances.values()) == 0
