"""An accepted offline spend becomes a captured sale, so it clears like an online one.

The issuer holds the spend in its books under the RRN derived from the spend's digest
(``payswitch.offline.sale_ids``; ``IssuerOfflineService.PostOfflineSpend``, the advice); then
``record`` writes the switch's side: an AUTHORIZATION already CAPTURED for the spend's
amount, routed as an online sale of the card's scheme would be (the issuer's BIN, the
merchant's first acquirer serving that scheme), joined to the terminal's open batch. From
there the cut-off presents it to the issuer through its acquirer, the ledger posts it and
reconciliation matches it, as any sale (``switch.backoffice.settlement.run``).

Idempotent: the transaction id, RRN and STAN derive from the digest, so a repeated upload
finds the transaction (or its transmission) and only re-joins the batch, which keeps a
transaction in one batch. The issuer's hold comes first (the caller posts, then records), so
the switch never presents a sale the issuer does not hold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from payswitch.cards import Scheme, scheme_of
from payswitch.offline import sale_ids
from payswitch.world.topology import Topology
from switch.backoffice.batches.join import item_of
from switch.backoffice.offline.settle import Payment
from switch.domain.batches import ItemKind
from switch.domain.transactions import DuplicateTransmission, Transaction, TxState, TxType
from switch.routing.router import Router
from switch.store.base import Store

ENTRY_MODE = "offline"


class NoRoute(RuntimeError):
    """No acquirer of the merchant serves the issuer's scheme: the spend cannot clear."""


def route(topology: Topology, issuer_id: str, merchant_id: str) -> tuple[str, Scheme, str]:
    """(BIN, scheme, acquirer id) for a sale of ``issuer_id``'s card at ``merchant_id``."""
    issuer = topology.issuer(issuer_id)
    merchant = topology.merchant(merchant_id)
    router = Router(topology)
    for rng in issuer.bins:
        pan_like = rng.low.ljust(16, "0")
        scheme = scheme_of(pan_like)
        owner = topology.issuer_for_pan(rng.low)
        if scheme is None or owner is None or owner.id != issuer_id:
            continue
        acquirers = router.acquirers_for(merchant, scheme)
        if acquirers:
            return rng.low, scheme, acquirers[0]
    raise NoRoute(f"issuer {issuer_id}: no acquirer of {merchant_id} serves its schemes")


class OfflineSales:
    def __init__(
        self, store: Store, topology: Topology, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.topology = topology
        self.clock = clock

    def sale_of(self, p: Payment, now: float) -> Transaction:
        bin_, scheme, acquirer = route(self.topology, p.issuer, p.merchant_id)
        local = datetime.fromtimestamp(now, UTC)
        return Transaction(
            id=sale_ids.transaction_id_of_spend(p.key),
            type=TxType.AUTHORIZATION,
            state=TxState.CAPTURED,
            terminal_id=p.terminal_id,
            merchant_id=p.merchant_id,
            stan=sale_ids.stan_of_spend(p.key),
            local_date=local.date().isoformat(),
            local_time=local.replace(tzinfo=None).isoformat(timespec="seconds"),
            amount_minor=p.amount,
            currency=p.currency,
            card_token=p.card_token,
            masked_pan=bin_[:6] + "******OFFL",
            bin=bin_,
            scheme=scheme.value,
            rrn=sale_ids.rrn_of_spend(p.key),
            created_at=now,
            updated_at=now,
            deadline_at=now,
            acquirer_id=acquirer,
            captured_minor=p.amount,
            response_code="00",
            auth_code=sale_ids.auth_code_of_spend(p.key),
            idempotency_key="offline:" + p.key,
            entry_mode=ENTRY_MODE,
            mcc=self.topology.merchant(p.merchant_id).mcc,
        )

    async def record(self, p: Payment) -> Transaction:
        """The captured sale of ``p`` in its terminal's open batch (once)."""
        now = self.clock()
        tx = await self.store.get_transaction(sale_ids.transaction_id_of_spend(p.key))
        if tx is None:
            tx = self.sale_of(p, now)
            try:
                await self.store.insert_transaction(tx)
            except DuplicateTransmission as exc:
                found = await self.store.get_transaction(exc.existing_id)
                if found is None or found.id != tx.id:
                    raise
                tx = found
        await self.store.join_batch(tx.terminal_id, item_of(tx, ItemKind.SALE), now)
        return tx
