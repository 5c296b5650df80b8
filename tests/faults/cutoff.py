"""The cut-offs inside a seed, and the invariants of the money after them.

After quiescence the harness triggers the operator's manual cut-off (SIGUSR1 to the switch),
then makes the plan's refunds on the calm network, then a second cut-off. Each: batches
close, the clearing files go
to the acquirers, who settle with the schemes and issuers and write their reports; the switch
marks what was settled SETTLED and posts the ledger. Done when every captured sale and every
approved refund is SETTLED and no acquirer receivable is left open, bounded in time.

Then, against the switch's store (its ledger and transactions), the acquirers' settlement
reports and the issuers' books:

- the ledger sums to zero in every currency, in integer minor units;
- each merchant's payable, per currency, is captured - refunded - fees (no chargebacks in a
  seed), the fees computed here from the topology's fee table (``presentment_fees``);
- the reconciliation (``switch.backoffice.recon.engine.reconcile``) over the three sources
  lists nothing. A discrepancy the faults explain would be listed with its explanation; none
  is expected: every dead letter is replayed before the cut-off (``Driver.replay_dead_letters``)
  and an advice the issuer refuses never happens in the harness's plan (its stand-in file
  decides exactly as the issuer would).
"""

from __future__ import annotations

import asyncio
import math
import signal
import time
from collections import defaultdict
from pathlib import Path

from payswitch.settlement.fees import presentment_fees
from stack.launcher import Stack
from switch.backoffice.ledger import accounts as ac
from switch.backoffice.ledger.ledger import Ledger
from switch.backoffice.recon.engine import reconcile
from switch.backoffice.recon.sources import load_reports, read_books, switch_transactions
from switch.domain.transactions import TxState, TxType
from switch.store import open_store

from .plan import SWITCH

SETTLE_S = 90.0
POLL_S = 0.1  # a read of the store: cheap, and a cut-off done is seen at once


async def cut_off(stack: Stack, bound_s: float = SETTLE_S) -> list[str]:
    """The manual cut-off; [] once everything captured is settled, else what is not."""
    await asyncio.to_thread(stack.kill, SWITCH, signal.SIGUSR1, False)
    end = time.monotonic() + bound_s
    while True:
        left = await _unsettled(stack.store_url)
        if not left or time.monotonic() > end:
            return left
        await asyncio.sleep(POLL_S)


async def _unsettled(store_url: str) -> list[str]:
    async with open_store(store_url) as store:
        left = [
            f"tx {tx.id} ({tx.type.value} rrn {tx.rrn}) still {tx.state.value} after the cut-off"
            for tx in await store.transactions_in_state(TxState.CAPTURED, math.inf, 10_000)
        ]
        left += [
            f"refund {tx.id} rrn {tx.rrn} still APPROVED after the cut-off"
            for tx in await store.transactions_in_state(TxState.APPROVED, math.inf, 10_000)
            if tx.type is TxType.REFUND
        ]
        ledger = Ledger(store)
        for cur in await ledger.currencies():
            for account, value in (await ledger.balances(cur)).items():
                if value and account.startswith("acquirer_receivable:"):
                    left.append(f"ledger {account} {cur} still {value} after the cut-off")
    return left


async def money_after(stack: Stack, settlement_dir: Path) -> tuple[list[str], dict[str, int]]:
    """The ledger, the payables and the reconciliation after the cut-off: (violations,
    stats)."""
    bad: list[str] = []
    stats: dict[str, int] = defaultdict(int)
    topology = stack.topology
    mcc = {m.id: m.mcc for m in topology.merchants}
    async with open_store(stack.store_url) as store:
        txs = await switch_transactions(store, math.inf)
        disputes = await store.disputes()
        ledger = Ledger(store)
        owed: dict[tuple[str, str], int] = defaultdict(int)
        for tx in txs:
            if tx.state is not TxState.SETTLED:
                continue
            if tx.type is TxType.REFUND:
                owed[(tx.merchant_id, tx.currency)] -= tx.amount_minor
                stats["refunds settled"] += 1
                continue
            fees = presentment_fees(
                topology.fees, "CAPTURE", tx.scheme, mcc[tx.merchant_id], tx.currency,
                tx.captured_minor,
            )  # fmt: skip
            owed[(tx.merchant_id, tx.currency)] += tx.captured_minor - fees.total_minor
            stats["sales settled"] += 1
        for cur in await ledger.currencies():
            tb = await ledger.trial_balance(cur)
            if tb.total != 0:
                bad.append(f"ledger {cur}: the entries sum to {tb.total}, not 0")
            bad += [
                f"ledger {cur}: {a} balance {v!r} is not integer minor units"
                for a, v in tb.balances.items()
                if type(v) is not int
            ]
            payables = {
                a: -v for a, v in tb.balances.items() if a.startswith("merchant_payable:") and v
            }
            want = {ac.merchant_payable(m): v for (m, c), v in owed.items() if c == cur and v}
            if payables != want:
                bad.append(f"ledger {cur}: merchant payables {payables}, captured - refunded"
                           f" - fees says {want}")  # fmt: skip
            stats["currencies"] += 1
    reports = await asyncio.to_thread(load_reports, settlement_dir)
    books = await asyncio.to_thread(read_books, sorted((stack.books_dir).glob("*.db")))
    issues = reconcile(
        txs, reports, books, cutoff=time.time(), fee_table=topology.fees, disputes=disputes
    )
    bad += [f"reconciliation: {i.type} {i.kind} rrn {i.rrn}: {i.detail}" for i in issues]
    stats["reports"] = len(reports)
    return bad, dict(stats)
