"""An accepted offline spend becomes a captured sale, so it clears like an online one.

``record`` writes the switch's side while the upload settles the entry: an AUTHORIZATION
already CAPTURED for the spend's amount, routed as an online sale of the card's scheme would
be (the issuer's BIN, the merchant's first acquirer serving that scheme), and the advice the
issuer is owed, an ``OFFLINE_ADVICE`` item of the store-and-forward queue (durable before the
upload mark moves; retries, dead letters and replay as any advice). The upload does not wait
for the issuer. ``deliver``, the queue's handler, posts the advice
(``IssuerOfflineService.PostOfflineSpend``: the issuer holds the spend under the RRN derived
from its digest) and only then joins the sale to the terminal's open batch, so the cut-off
never presents a sale the issuer does not hold; from there it clears, posts to the ledger and
reconciles as any sale (``switch.backoffice.settlement.run``).

What the advice needs beyond the sale travels on it: ``original_id`` is the allowance the
spend draws on (a sale's original authorization, as a refund's is its sale) and the
idempotency key says whether it is charged beyond the allowance (``offline-beyond:``).

Idempotent: the transaction id, RRN and STAN derive from the digest, so a repeated upload
finds the transaction (or its transmission) and the queue item (keyed by kind and
transaction); the issuer posts a spend once and a transaction joins one batch.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from payswitch.cards import Scheme, scheme_of
from payswitch.offline import sale_ids
from payswitch.world.topology import Topology
from switch.backoffice.batches.join import item_of
from switch.backoffice.offline.settle import Payment
from switch.domain.batches import ItemKind
from switch.domain.saf import SafKind
from switch.domain.transactions import DuplicateTransmission, Transaction, TxState, TxType
from switch.recovery.saf import NotDelivered, SafQueue
from switch.routing.router import Router
from switch.store.base import Store

ENTRY_MODE = "offline"
WITHIN, BEYOND = "offline:", "offline-beyond:"  # idempotency key prefixes

Post = Callable[[Payment], Awaitable[None]]  # the issuer's advice; raises when not taken


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
        self,
        store: Store,
        topology: Topology,
        saf: SafQueue,
        post: Post,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.topology = topology
        self.saf = saf
        self.post = post
        self.clock = clock
        saf.register(SafKind.OFFLINE_ADVICE, self.deliver)

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
            idempotency_key=(BEYOND if p.beyond_allowance else WITHIN) + p.key,
            original_id=p.allowance_id,
            entry_mode=ENTRY_MODE,
            mcc=self.topology.merchant(p.merchant_id).mcc,
        )

    async def record(self, p: Payment) -> Transaction:
        """The captured sale of ``p`` and its advice in the queue (once each)."""
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
        await self.saf.enqueue(SafKind.OFFLINE_ADVICE, tx.id)
        return tx

    def payment_of(self, tx: Transaction) -> Payment:
        """The advice of a sale ``record`` wrote (the inverse of ``sale_of``)."""
        beyond = tx.idempotency_key.startswith(BEYOND)
        key = tx.idempotency_key.removeprefix(BEYOND if beyond else WITHIN)
        issuer = self.topology.issuer_for_pan(tx.bin)
        if issuer is None or tx.entry_mode != ENTRY_MODE or not tx.original_id:
            raise NotDelivered(f"transaction {tx.id} is not an offline sale")
        return Payment(
            key, issuer.id, tx.card_token, tx.original_id, 0, tx.amount_minor, tx.currency,
            tx.merchant_id, tx.terminal_id, beyond,
        )  # fmt: skip

    async def deliver(self, tx: Transaction) -> bool:
        """The queue's ``OFFLINE_ADVICE`` handler: the issuer holds the spend, then the sale
        joins its terminal's open batch (both idempotent: a retry after a crash between them
        posts nothing twice)."""
        try:
            await self.post(self.payment_of(tx))
        except NotDelivered:
            raise
        except Exception as exc:  # the issuer did not take it: the queue retries
            raise NotDelivered(f"issuer: {type(exc).__name__}") from None
        await self.store.join_batch(tx.terminal_id, item_of(tx, ItemKind.SALE), self.clock())
        return True
