"""Multi-currency: EUR (2 decimals), JPY (0) and KWD (3) in one ledger never mix; each
currency's trial balance is zero and every stored line is in its posting's currency."""

from __future__ import annotations

from ledgerkit import FEES, settled_sale

from payswitch.settlement.fees import fee_for
from switch.backoffice.ledger import Ledger
from switch.backoffice.ledger import accounts as ac


async def test_three_currencies_stay_apart_and_each_sums_to_zero(any_store) -> None:
    store, ledger = any_store, Ledger(any_store, FEES)
    amounts = {"EUR": [1_250, 99_999], "JPY": [1_000, 15_000], "KWD": [1_250, 7]}
    for currency, values in amounts.items():
        for value in values:
            await settled_sale(store, ledger, amount_minor=value, currency=currency)
    assert await ledger.currencies() == ["EUR", "JPY", "KWD"]
    for currency, values in amounts.items():
        entries = await store.ledger_entries(currency)
        assert {e.currency for e in entries} == {currency}
        tb = await ledger.trial_balance(currency)
        assert tb.total == 0
        fees = sum(
            fee_for(ledger.fee_table, "visa", "5411", currency, v).total_minor for v in values
        )
        assert tb.balances[ac.merchant_payable("M001")] == -(sum(values) - fees)
        postings = {e.posting_id for e in entries}
        for pid in postings:
            posting = await store.ledger_get(pid)
            assert {x.currency for x in posting.lines} == {currency}
