"""An accepted offline spend as a captured sale (``switch.backoffice.offline.sales``) on a
real SQLite store: routed as an online sale of the issuer's scheme, its advice queued in the
store-and-forward queue and the sale joined to the terminal's open batch once the issuer took
it, once however often it is recorded; identifiers derived from the spend's digest."""

import hashlib
import time
from dataclasses import replace
from pathlib import Path

import pytest

from payswitch.offline import sale_ids
from payswitch.world.topology import SafConfig, load
from switch.backoffice.offline.sales import NoRoute, OfflineSales, route
from switch.backoffice.offline.settle import Payment
from switch.domain.saf import SafKind, item_id
from switch.domain.transactions import TxState, TxType
from switch.recovery.saf import SafQueue
from switch.store import open_store

TOPOLOGY = load(Path(__file__).resolve().parents[2] / "topology" / "default.toml")


def _payment(n: int, amount: int = 1250) -> Payment:
    digest = hashlib.sha256(f"spend-{n}".encode()).hexdigest()
    return Payment(digest, "bank-a", "tok-1", "al-1", n, amount, "EUR", "M-GROCER", "T-0001", False)


def test_identifiers_derive_from_the_digest_and_stay_out_of_online_ranges() -> None:
    d = _payment(1).key
    assert sale_ids.rrn_of_spend(d) == sale_ids.rrn_of_spend(d)
    assert len(sale_ids.rrn_of_spend(d)) == 12 and sale_ids.rrn_of_spend(d).startswith("9")
    assert sale_ids.stan_of_spend(d) > 999_999
    assert sale_ids.rrn_of_spend(d) != sale_ids.rrn_of_spend(_payment(2).key)
    with pytest.raises(ValueError, match="spend digest"):
        sale_ids.rrn_of_spend("AB" * 32)


def test_route_takes_the_issuers_bin_and_the_merchants_acquirer_for_its_scheme() -> None:
    bin_, scheme, acquirer = route(TOPOLOGY, "bank-a", "M-GROCER")
    assert TOPOLOGY.issuer_for_pan(bin_).id == "bank-a"
    assert acquirer in TOPOLOGY.merchant("M-GROCER").acquirers
    assert scheme.value in {s.value for s in next(
        a for a in TOPOLOGY.acquirers if a.id == acquirer).schemes}  # fmt: skip


def test_no_route_when_no_acquirer_serves_the_scheme() -> None:
    lonely = replace(TOPOLOGY.merchant("M-GROCER"), acquirers=())
    topo = replace(TOPOLOGY, merchants=(lonely,))
    with pytest.raises(NoRoute):
        route(topo, "bank-a", "M-GROCER")


async def test_a_spend_recorded_twice_is_one_captured_sale_and_one_advice(tmp_path) -> None:
    """Recording writes the sale and queues its advice; the sale joins the batch only once
    the issuer took the advice, so the cut-off never presents a sale the issuer lacks."""
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    await store.open()
    posted: list[Payment] = []
    issuer_up = False

    async def post(p: Payment) -> None:
        if not issuer_up:
            raise ConnectionError("issuer down")
        posted.append(p)

    try:
        saf = SafQueue(store, SafConfig(base_delay_s=0.0, max_delay_s=0.0))
        sales = OfflineSales(store, TOPOLOGY, saf, post)
        p = _payment(1)
        first = await sales.record(p)
        again = await sales.record(p)
        assert first.id == again.id == sale_ids.transaction_id_of_spend(p.key)
        tx = await store.get_transaction(first.id)
        assert tx is not None
        assert (tx.type, tx.state, tx.captured_minor, tx.currency) == (
            TxType.AUTHORIZATION, TxState.CAPTURED, 1250, "EUR",
        )  # fmt: skip
        assert tx.rrn == sale_ids.rrn_of_spend(p.key) and tx.entry_mode == "offline"
        beyond = replace(_payment(2, 300), beyond_allowance=True)
        await sales.record(beyond)
        live = await saf.list_items(dead=False)
        assert sorted(i.id for i in live) == sorted(
            item_id(SafKind.OFFLINE_ADVICE, sale_ids.transaction_id_of_spend(x.key))
            for x in (p, beyond)
        )
        no = await store.open_batch_no("T-0001", time.time())
        assert await saf.run_once() == 2 and await saf.drain(10)  # the issuer is down
        assert posted == [] and await store.batch_items("T-0001", no) == []
        assert all(i.attempts == 1 for i in await saf.list_items(dead=False))
        issuer_up = True
        assert await saf.run_once() == 2 and await saf.drain(10)
        assert await saf.list_items(dead=False) == []
        assert sorted(posted, key=lambda x: x.amount) == [
            replace(beyond, counter=0),
            replace(p, counter=0),
        ]
        items = await store.batch_items("T-0001", no)
        assert sorted((i.transaction_id, i.amount_minor) for i in items) == sorted(
            [(first.id, 1250), (sale_ids.transaction_id_of_spend(beyond.key), 300)]
        )
    finally:
        await store.close()
