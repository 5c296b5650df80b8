"""Helpers of the ledger tests: a fee table and transactions driven through their states."""

from __future__ import annotations

import itertools
import uuid

from switch.backoffice.ledger import Ledger
from switch.cli.recon import FeeRow
from switch.domain.transactions import Changes, Expect, Transaction, TxState, TxType
from switch.store.base import Store

DAY0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC
# Rows with the topology's [[fees]] fields (fee_for reads attributes only).
FEES = (
    FeeRow("visa", "*", "EUR", interchange_bps=20, interchange_fixed_minor=5, scheme_fee_bps=10),
    FeeRow("visa", "5812", "EUR", interchange_bps=50, scheme_fee_bps=10),
    FeeRow("mastercard", "*", "EUR", interchange_bps=30, scheme_fee_fixed_minor=2),
    FeeRow("visa", "*", "JPY", interchange_bps=150, scheme_fee_bps=15),
    FeeRow("visa", "*", "KWD", interchange_bps=25, scheme_fee_bps=5, scheme_fee_fixed_minor=1),
)
_n = itertools.count(1)
_RUN = uuid.uuid4().hex[:6]


def new_tx(**kw: object) -> Transaction:
    n = next(_n)
    base = dict(
        id=f"tx-{_RUN}-{n:05d}", type=TxType.AUTHORIZATION, state=TxState.RECEIVED,
        terminal_id="T0001", merchant_id="M001", stan=n, local_date="2027-01-15",
        local_time="2027-01-15T09:00:00", amount_minor=10_000, currency="EUR",
        card_token="tok", masked_pan="411111******1111", bin="41111111", scheme="visa",
        rrn=f"7{n:011d}", created_at=DAY0, updated_at=DAY0, deadline_at=DAY0 + 2,
        mcc="5411",
    )  # fmt: skip
    base.update(kw)
    return Transaction(**base)  # type: ignore[arg-type]


async def approved(store: Store, **kw: object) -> Transaction:
    tx = new_tx(**kw)
    await store.insert_transaction(tx)
    await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING, Changes(acquirer_id="ACQ1"))
    return await store.transition(
        tx.id, TxState.PENDING, TxState.APPROVED, Changes(response_code="00", auth_code="A1B2C3")
    )


async def captured(store: Store, captured_minor: int | None = None, **kw: object) -> Transaction:
    tx = await approved(store, **kw)
    amount = tx.amount_minor if captured_minor is None else captured_minor
    return await store.transition(
        tx.id, TxState.APPROVED, TxState.CAPTURED, Changes(captured_minor=amount)
    )


async def settled_sale(
    store: Store, ledger: Ledger, captured_minor: int | None = None, **kw: object
) -> Transaction:
    """A captured sale, presented and settled, both posted to the ledger."""
    tx = await captured(store, captured_minor, **kw)
    await ledger.on_presented(tx)
    tx = await store.transition(tx.id, TxState.CAPTURED, TxState.SETTLED)
    await ledger.on_settled(tx)
    return tx


async def refund_of(store: Store, sale: Transaction, amount: int, **kw: object) -> Transaction:
    """An approved refund of ``sale`` (reserving on the original, as the switch does)."""
    await store.compare_and_set(
        sale.id, Expect(refunded_minor=sale.refunded_minor),
        Changes(refunded_minor=sale.refunded_minor + amount),
    )  # fmt: skip
    tx = new_tx(
        type=TxType.REFUND, amount_minor=amount, currency=sale.currency,
        merchant_id=sale.merchant_id, scheme=sale.scheme, mcc=sale.mcc, original_id=sale.id,
        **kw,
    )  # fmt: skip
    await store.insert_transaction(tx)
    await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING, Changes(acquirer_id="ACQ1"))
    return await store.transition(
        tx.id, TxState.PENDING, TxState.APPROVED, Changes(response_code="00")
    )
