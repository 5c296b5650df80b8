"""Offline cases in the dispute flow: which sale a case concerns, its disputes, and the
merchant's representment with the case's evidence.

A case the cardholder bears (a cloned device's later claim, a forked chain, the cumulative cap
exceeded) was paid: it is a settled sale (``switch.backoffice.offline.sales``) whose RRN the
issuer can charge back when the cardholder disputes it, through the existing flow (the
issuer's chargeback file, ``payswitch-dispute ingest``). The merchant answers with the case's
evidence: the spend and allowance bytes the device and issuer signed, and the claim it
conflicts with, which is what the rule charges to the cardholder. A case the merchant bears
was never paid, so there is no sale to dispute: its evidence is the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from payswitch.offline import sale_ids
from switch.backoffice.disputes.service import Disputes
from switch.domain.errors import NotFound
from switch.domain.ledger import Dispute, DisputeState
from switch.domain.offline import OfflineCase
from switch.domain.transactions import Transaction
from switch.store.base import Store


@dataclass
class CaseView:
    case: OfflineCase
    sale: Transaction | None  # None: the case was not paid (the merchant's), nothing to dispute
    disputes: list[Dispute] = field(default_factory=list)


async def find_case(store: Store, case_id: str) -> OfflineCase:
    for case in await store.offline_cases():
        if case.case_id == case_id:
            return case
    raise NotFound(f"case_id: no offline case {case_id!r}")


async def case_view(store: Store, case_id: str) -> CaseView:
    """The case, the sale it concerns (when paid) and that sale's disputes."""
    case = await find_case(store, case_id)
    sale = None
    if case.paid:
        sale = await store.get_transaction(sale_ids.transaction_id_of_spend(case.digest))
    disputes = []
    if sale is not None:
        disputes = await store.disputes_of(sale.id)
    return CaseView(case, sale, disputes)


async def represent_with_case(
    store: Store, case_id: str, now: float | None = None
) -> list[Dispute]:
    """Answer every open chargeback on the case's sale with the case's evidence."""
    view = await case_view(store, case_id)
    flow = Disputes(store)
    out = []
    for d in view.disputes:
        if d.state is DisputeState.CHARGEBACK:
            evidence = f"offline case {view.case.case_id}: {view.case.evidence}"
            out.append(await flow.represent(d.dispute_id, evidence, now))
    return out
