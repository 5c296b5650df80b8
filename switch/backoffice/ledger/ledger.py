"""``Ledger``: post events as balanced postings (idempotent), read balances as of any time.

Balances are derived, never stored: the sum of an account's lines posted at or before the
instant asked for. Fees of a settlement come from the fee table through
``switch.backoffice.settlement.fees.fee_for`` (the acquirer computes them with the same function),
so ``settlement_event`` needs the transaction's scheme, MCC, currency and amount.

Postings in pages (issue 17): the settlement run's hooks (``on_presented``, ``on_settled``)
post one event at a time until the first ``flush()``; a caller that calls ``flush()`` (the
run, after each page it made durable) takes on flushing, and from then on the hooks buffer
their postings and post them with one store call (``Store.ledger_post_many``) when the buffer
holds ``page_size`` or at the next ``flush()``. So a Ledger nobody flushes posts as it always
did, and one that is flushed must be flushed once more at the end (a buffered posting dies
with its process: the run flushes before it records a page as done). ``post()`` and every
reader flush first, so this object's own reads see its own postings.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from payswitch import fx
from payswitch.crashpoint import crashpoint
from payswitch.fx import RateTable
from payswitch.settlement.fees import presentment_fees
from payswitch.world.topology import Topology
from switch.backoffice.ledger.events import Event, EventKind
from switch.backoffice.ledger.rules import lines_for
from switch.domain.ledger import LedgerPosting
from switch.domain.transactions import Transaction, TxType
from switch.store.base import Store
from switch.store.ledger import ledger_entry_pages

PAGE_SIZE = 500  # postings per ledger_post_many call


@dataclass(frozen=True, slots=True)
class TrialBalance:
    currency: str
    balances: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.balances.values())


class Ledger:
    def __init__(
        self,
        store: Store,
        fee_table: Sequence[Any] = (),
        rates: Mapping[str, tuple[RateTable, ...]] | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        """``fee_table``: the topology's ``[[fees]]`` rules, as ``fee_for`` takes them.
        ``rates``: each card scheme's rate tables (``scheme_rates``), for the clearing-time
        rate of a converted sale (without one, the authorization's rate: no difference)."""
        self.store = store
        self.fee_table = fee_table
        self.rates = dict(rates or {})
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.page_size = page_size
        self._paged = False  # set by the first flush(): the caller flushes from then on
        self._buffer: list[LedgerPosting] = []

    async def post(self, event: Event) -> bool:
        """Post ``event`` now: True when new, False when its id was posted before (replay).
        UnbalancedPosting for a rule that does not balance or a mixed currency."""
        await self.flush_buffer()
        return await self.store.ledger_post(_posting(event))

    async def post_many(self, events: Sequence[Event]) -> int:
        """Post a page of events now, with one store call: how many were new."""
        await self.flush_buffer()
        return await self.store.ledger_post_many([_posting(e) for e in events])

    async def buffer(self, event: Event) -> None:
        """Post ``event`` with the next page (at once until the caller flushes: see above)."""
        if not self._paged:
            await self.store.ledger_post(_posting(event))
            return
        self._buffer.append(_posting(event))  # UnbalancedPosting here, not at the flush
        if len(self._buffer) >= self.page_size:
            await self.flush_buffer()

    async def flush(self) -> None:
        """Post what was buffered since the last flush in one store call, durable on return;
        from the first call on, the hooks buffer (the caller flushes at its end)."""
        self._paged = True
        await self.flush_buffer()

    async def flush_buffer(self) -> None:
        """Post the buffer (``crashpoint("ledger.posting")`` once the page is durable)."""
        if not self._buffer:
            return
        page, self._buffer = self._buffer, []
        try:
            await self.store.ledger_post_many(page)
        except BaseException:
            self._buffer = page + self._buffer  # nothing is dropped: the next flush retries
            raise
        crashpoint("ledger.posting")

    async def balances(self, currency: str, as_of: float | None = None) -> dict[str, int]:
        await self.flush_buffer()
        totals: dict[str, int] = defaultdict(int)
        async for page in ledger_entry_pages(self.store, currency, as_of):
            for entry in page:
                totals[entry.account] += entry.amount_minor
        return dict(totals)

    async def balance(self, account: str, currency: str, as_of: float | None = None) -> int:
        return (await self.balances(currency, as_of)).get(account, 0)

    async def trial_balance(self, currency: str, as_of: float | None = None) -> TrialBalance:
        """Every account's balance in ``currency``; ``total`` is zero when the books hold."""
        return TrialBalance(currency, await self.balances(currency, as_of))

    async def currencies(self) -> list[str]:
        await self.flush_buffer()
        return await self.store.ledger_currencies()

    # --- events from settlement records ------------------------------------------------------
    def presentment_event(self, tx: Transaction, at: float | None = None) -> Event:
        """The presentment of a captured sale (captured amount) or an approved refund."""
        refund = tx.type is TxType.REFUND
        return Event(
            kind=EventKind.REFUND_PRESENTED if refund else EventKind.CAPTURE_PRESENTED,
            transaction_id=tx.id,
            sequence="0",
            merchant_id=tx.merchant_id,
            acquirer_id=tx.acquirer_id,
            scheme=tx.scheme,
            amount_minor=tx.amount_minor if refund else tx.captured_minor,
            currency=tx.currency,
            occurred_at=time.time() if at is None else at,
            rrn=tx.rrn,
        )

    def settlement_event(self, tx: Transaction, at: float | None = None) -> Event:
        """The settlement of a presented transaction, fees from the fee table."""
        refund = tx.type is TxType.REFUND
        amount = tx.amount_minor if refund else tx.captured_minor
        kind = "REFUND" if refund else "CAPTURE"  # a refund carries no fees (the report's rule)
        fees = presentment_fees(self.fee_table, kind, tx.scheme, tx.mcc, tx.currency, amount)
        return Event(
            kind=EventKind.REFUND_SETTLED if refund else EventKind.CAPTURE_SETTLED,
            transaction_id=tx.id,
            sequence="0",
            merchant_id=tx.merchant_id,
            acquirer_id=tx.acquirer_id,
            scheme=tx.scheme,
            amount_minor=amount,
            currency=tx.currency,
            occurred_at=time.time() if at is None else at,
            rrn=tx.rrn,
            interchange_minor=fees.interchange_minor,
            scheme_fee_minor=fees.scheme_fee_minor,
        )

    def fx_event(self, tx: Transaction, at: float | None = None) -> Event | None:
        """The FX side of a settled converted capture or refund (rules: FX_*), or None."""
        if not tx.billing_currency or not tx.fx_rate:
            return None
        when = time.time() if at is None else at
        refund = tx.type is TxType.REFUND
        amount = tx.amount_minor if refund else tx.captured_minor
        billed = tx.billing_minor if refund else tx.billing_captured_minor
        table = fx.table_for(self.rates.get(tx.scheme, ()), _utc_day(when))
        rate = Decimal(tx.fx_rate)
        if table is not None:
            try:
                rate = table.rate(tx.currency, tx.billing_currency)
            except fx.FxError:
                pass  # the table lacks the pair: the authorization's rate, no difference
        return Event(
            kind=EventKind.FX_REFUND_SETTLED if refund else EventKind.FX_CAPTURE_SETTLED,
            transaction_id=tx.id,
            sequence="0",
            merchant_id=tx.merchant_id,
            acquirer_id=tx.acquirer_id,
            scheme=tx.scheme,
            amount_minor=billed,
            currency=tx.billing_currency,
            occurred_at=when,
            rrn=tx.rrn,
            cleared_minor=fx.convert(amount, tx.currency, tx.billing_currency, rate),
        )

    # --- hooks of the settlement run (switch/settlement/run.py) ----------------------------
    async def on_presented(self, tx: Transaction, record: object = None) -> None:
        await self.buffer(self.presentment_event(tx))

    async def on_settled(self, tx: Transaction, entry: object = None) -> None:
        await self.buffer(self.settlement_event(tx))
        fx_side = self.fx_event(tx)
        if fx_side is not None:
            await self.buffer(fx_side)


def _posting(event: Event) -> LedgerPosting:
    return LedgerPosting(
        posting_id=event.event_id,
        transaction_id=event.transaction_id,
        kind=event.kind.value,
        rrn=event.rrn,
        currency=event.currency,
        posted_at=event.occurred_at,
        lines=lines_for(event),
    )


def _utc_day(at: float) -> date:
    return datetime.fromtimestamp(at, UTC).date()


def scheme_rates(topology: Topology) -> dict[str, tuple[RateTable, ...]]:
    """Each card brand's rate tables: its scheme node's (``Ledger`` ``rates``)."""
    return {brand.value: s.rates for s in topology.schemes for brand in s.brands}
