"""End to end, cross-border (issue 16): a card billed in another currency than the sale's.

Its own stack, every node a real process, once per store backend (SQLite, Cassandra), so the
scheme restart and the cut-off touch no other module's transactions. Rates come from the
default topology's tables (units per EUR: USD 1.0825, JPY 161.37, KWD 0.3331); each expected
amount is worked out here with ``payswitch.fx``, so the books must agree to the minor unit.
The last test settles the module's day: clearing, reports, the ledger per currency with its
FX account, a chargeback in the billing currency and the reconciliation of the three sources.
"""

import asyncio
import io
import json
import signal
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import grpc
import pytest

from payswitch import fx
from payswitch.seclink import canonical_response
from payswitch.settlement.report import read_report
from payswitch.v1 import common_pb2, network_pb2, terminal_pb2
from payswitch.world.ports import write_topology
from switch.backoffice.ledger import accounts as ac
from switch.backoffice.ledger.ledger import Ledger
from switch.store import open_store
from terminals import pos as pos_cli

from .clients import Books, RawTerminal, code, node_channels
from .conftest import (
    DEFAULT_TOPOLOGY,
    E2E_STORES,
    cassandra_keyspace,
    cassandra_node,
    drop_keyspace,
    injected,
    start_stack,
)

pytestmark = pytest.mark.e2e

USD_CARD = ("2223000048400011", "2906")  # bank-b, account B-2002 in USD (Mastercard: banknet)
JPY_CARD = ("3530111333300000", "2903")  # bank-c, account C-3002 in JPY (JCB: globalnet)
EUR_USD = Decimal("1.08250000")
KWD_JPY = Decimal("484.44911438")  # 161.37 / 0.3331, half-up to 8 places


@pytest.fixture(scope="module", params=E2E_STORES)
async def stack(request, tmp_path_factory, hsm_token):
    run_dir = tmp_path_factory.mktemp(f"fx-{request.param}")
    keyspace = None
    store = "sqlite"
    if request.param == "cassandra":
        keyspace = await asyncio.to_thread(cassandra_keyspace, "e2e_fx")
        host, name = keyspace
        store = f"cassandra://{host}:{cassandra_node.PORT}/{name}?replication=1"
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    doc["settlement"]["dir"] = str(run_dir / "settlement")
    for acquirer in doc["acquirers"]:  # both settle with their merchants in EUR
        acquirer["settlement_currency"] = "EUR"
    s = await asyncio.to_thread(start_stack, run_dir, doc, store=store)
    try:
        yield s
    finally:
        await asyncio.to_thread(s.stop)
        if keyspace is not None:
            await asyncio.to_thread(drop_keyspace, *keyspace)


@pytest.fixture(scope="module")
async def channels(stack):
    made = node_channels(stack)
    yield made
    for ch in made.values():
        await ch.close()


@pytest.fixture(scope="module")
async def pos(stack, channels) -> RawTerminal:
    return RawTerminal(channels[stack.topology.switch.id], await injected())


@pytest.fixture(scope="module")
def books(stack, channels) -> Books:
    return Books({i.id: channels[i.id] for i in stack.topology.issuers})


def cli(command: str, *argv: str) -> subprocess.CompletedProcess:
    """An operator's command (the venv's console script), as a process of its own."""
    script = Path(sys.executable).parent / command
    return subprocess.run([str(script), *argv], capture_output=True, text=True, timeout=120)


async def test_usd_card_at_a_eur_merchant(pos, books):
    before = await books.account("bank-b", "B-2002")
    req = pos.auth_request(USD_CARD[0], 1234, "EUR", USD_CARD[1])
    resp = await pos.authorize(req)
    assert code(resp) == "00"
    billed = fx.convert(1234, "EUR", "USD", EUR_USD)
    assert billed == 1336  # 13.358... USD, half-up
    assert (resp.billing_minor_units, resp.billing_currency) == (billed, "USD")
    assert resp.conversion_rate == "1.08250000" and resp.rate_table == "banknet-2025-01-01"
    assert (resp.amount.minor_units, resp.amount.currency) == (1234, "EUR")
    # the answer's MAC covers the billing fields (seclink RESPONSE_FIELDS_ADDED)
    assert pos.answer_verifies("authorize", req.encrypted_card.ksn, resp)
    forged = terminal_pb2.AuthorizeResponse()
    forged.CopyFrom(resp)
    forged.billing_minor_units += 1
    assert canonical_response("authorize", forged) != canonical_response("authorize", resp)
    after = await books.account("bank-b", "B-2002")
    assert after.currency == "USD" and after.held - before.held == billed
    hold = await books.hold("bank-b", resp.rrn)
    assert (hold.amount, hold.currency) == (billed, "USD")


async def test_jpy_card_at_a_kwd_merchant(pos, books):
    before = await books.account("bank-c", "C-3002")
    resp = await pos.pay(JPY_CARD[0], 10_000, "KWD", JPY_CARD[1])  # 10.000 KWD
    assert code(resp) == "00"
    assert resp.conversion_rate == fx.format_rate(KWD_JPY)
    assert (resp.billing_minor_units, resp.billing_currency) == (4844, "JPY")  # 4844.49 -> 4844
    after = await books.account("bank-c", "C-3002")
    assert after.held - before.held == 4844
    # captured in full: 4844 JPY posted, cleared with the day (the last test)
    cap = await pos.capture(resp.transaction_id, None, "KWD")
    assert code(cap) == "00" and cap.transaction.billing_captured_minor_units == 4844
    posted = await books.account("bank-c", "C-3002")
    assert posted.balance - before.balance == -4844 and posted.held == before.held


async def test_a_void_releases_the_hold_in_the_billing_currency(pos, books):
    before = await books.account("bank-b", "B-2002")
    auth = await pos.pay(USD_CARD[0], 777, "EUR", USD_CARD[1])  # 7.77 EUR -> 8.41 USD
    assert code(auth) == "00" and auth.billing_minor_units == 841
    assert (await books.account("bank-b", "B-2002")).held - before.held == 841
    void = await pos.void(auth.transaction_id)
    assert code(void) == "00"
    assert void.transaction.billing_minor_units == 841  # the record keeps both amounts
    after = await books.account("bank-b", "B-2002")
    assert (after.held, after.balance) == (before.held, before.balance)


async def test_partial_capture_then_refunds_in_the_billing_currency(pos, books):
    before = await books.account("bank-b", "B-2002")
    auth = await pos.pay(USD_CARD[0], 10_000, "EUR", USD_CARD[1])  # 100.00 EUR
    assert code(auth) == "00" and auth.billing_minor_units == 10825
    cap = await pos.capture(auth.transaction_id, 6_001)  # 60.01 EUR of it
    assert code(cap) == "00"
    posted = fx.convert(6_001, "EUR", "USD", EUR_USD)  # 64.960825 -> 64.96 USD
    after = await books.account("bank-b", "B-2002")
    assert after.balance - before.balance == -posted
    assert after.held == before.held  # the rest of the hold released
    hold = await books.hold("bank-b", auth.rrn)
    assert hold.state == network_pb2.HOLD_STATE_POSTED and hold.posted == posted
    # the switch keeps both amounts (store columns; GetTransaction carries them under its MAC)
    tx = await pos.get(auth.transaction_id)
    assert (tx.amount.minor_units, tx.captured.minor_units) == (10_000, 6_001)
    assert (tx.billing_minor_units, tx.billing_currency) == (10_825, "USD")
    assert tx.billing_captured_minor_units == posted and tx.conversion_rate == "1.08250000"
    # two refunds, cumulatively converted: together exactly what was posted
    r1 = await pos.refund(auth.transaction_id, 3_333)
    r2 = await pos.refund(auth.transaction_id, 2_668)
    assert code(r1) == "00" and code(r2) == "00"
    shares = [
        fx.allocate(0, 3_333, "EUR", "USD", EUR_USD),
        fx.allocate(3_333, 2_668, "EUR", "USD", EUR_USD),
    ]
    assert [r1.transaction.billing_minor_units, r2.transaction.billing_minor_units] == shares
    assert r1.transaction.billing_currency == "USD" and sum(shares) == posted
    hold = await books.hold("bank-b", auth.rrn)
    assert hold.refunded == posted
    final = await books.account("bank-b", "B-2002")
    assert final.balance == before.balance and final.held == before.held
    # more than the captured transaction amount is refused, whatever the rate
    r3 = await pos.refund(auth.transaction_id, 1)
    assert code(r3) != "00"


async def test_refund_after_a_rate_change_uses_the_days_rate(stack, pos, books):
    before = await books.account("bank-b", "B-2002")
    auth = await pos.pay(USD_CARD[0], 5_000, "EUR", USD_CARD[1])
    assert code(auth) == "00" and auth.billing_minor_units == 5_413  # 54.125 -> 54.13 USD
    assert code(await pos.capture(auth.transaction_id)) == "00"
    original = stack.topology_path.read_text()
    doc = tomllib.loads(original)
    banknet = next(s for s in doc["schemes"] if s["id"] == "banknet")
    today = datetime.now(UTC).date().isoformat()
    banknet["rates"].append(
        {"version": f"banknet-{today}", "effective": today, "base": "EUR",
         "quotes": {"USD": "1.10000000", "JPY": "161.37", "KWD": "0.3331"}}
    )  # fmt: skip
    write_topology(doc, stack.topology_path)
    await asyncio.to_thread(stack.restart, "banknet")  # the scheme publishes its new table
    try:
        refund = await pos.refund(auth.transaction_id, 5_000)
    finally:
        stack.topology_path.write_text(original)
        await asyncio.to_thread(stack.restart, "banknet")
    assert code(refund) == "00"
    r = refund.transaction
    assert (r.billing_minor_units, r.billing_currency) == (5_500, "USD")
    assert (r.conversion_rate, r.rate_table) == ("1.10000000", f"banknet-{today}")
    after = await books.account("bank-b", "B-2002")
    assert after.balance - before.balance == 5_500 - 5_413  # the cardholder gains the rate's move
    hold = await books.hold("bank-b", auth.rrn)
    assert (hold.posted, hold.refunded) == (5_413, 5_500)


async def quote(pos, bin6: str, minor: int, currency: str) -> terminal_pb2.QuoteDccResponse:
    req = terminal_pb2.QuoteDccRequest(
        terminal_id=pos.terminal_id,
        merchant_id=pos.merchant_id,
        amount=common_pb2.Money(minor_units=minor, currency=currency),
        card_bin=bin6,
    )
    return await pos.stub.QuoteDcc(req, timeout=2.0)


async def test_a_dcc_sale_is_authorized_and_cleared_in_the_cardholders_currency(pos, books):
    offer = await quote(pos, USD_CARD[0][:6], 10_000, "EUR")  # 100.00 EUR
    assert offer.eligible and offer.markup_bps == 300
    assert (offer.wholesale_rate, offer.rate) == ("1.08250000", "1.11497500")
    billed = fx.convert(10_000, "EUR", "USD", Decimal(offer.rate))  # 111.4975 -> 111.50
    assert (offer.cardholder_amount.minor_units, offer.cardholder_amount.currency) == (
        billed,
        "USD",
    )
    # A choice that no longer matches the offer is refused, nothing recorded.
    stale = pos.auth_request(USD_CARD[0], 10_000, "EUR", USD_CARD[1])
    stale.dcc_currency, stale.dcc_rate = "USD", "1.20000000"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await pos.authorize(pos.sign(stale))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "dcc_rate" in refused.value.details()
    before = await books.account("bank-b", "B-2002")
    req = pos.auth_request(USD_CARD[0], 10_000, "EUR", USD_CARD[1])
    req.dcc_currency, req.dcc_rate = "USD", offer.rate
    req = pos.sign(req)  # the choice is under the request MAC
    resp = await pos.authorize(req)
    assert code(resp) == "00"
    # The receipt shows both amounts, the rate and the markup, all under the answer's MAC.
    assert (resp.amount.minor_units, resp.amount.currency) == (10_000, "EUR")
    assert (resp.billing_minor_units, resp.billing_currency) == (billed, "USD")
    assert (resp.conversion_rate, resp.dcc_markup_bps) == (offer.rate, 300)
    assert pos.answer_verifies("authorize", req.encrypted_card.ksn, resp)
    # The issuer holds the cardholder's amount as is: no conversion at the scheme.
    after = await books.account("bank-b", "B-2002")
    assert after.held - before.held == billed
    tx = await pos.get(resp.transaction_id)
    assert (tx.amount.minor_units, tx.amount.currency) == (billed, "USD")
    assert (tx.dcc_local_minor_units, tx.dcc_local_currency) == (10_000, "EUR")
    assert tx.billing_currency == "" and tx.dcc_markup_bps == 300
    assert code(await pos.capture(resp.transaction_id, None, "USD")) == "00"  # clears in USD


async def test_dcc_is_offered_only_for_a_known_foreign_card(pos):
    jpy = await quote(pos, JPY_CARD[0][:6], 10_000, "KWD")
    assert jpy.eligible and jpy.cardholder_amount.currency == "JPY"
    assert not (await quote(pos, "411111", 1_000, "EUR")).eligible  # a EUR card in EUR
    assert not (await quote(pos, "620000", 1_000, "EUR")).eligible  # EUR and KWD cards: ambiguous
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await quote(pos, "4111", 1_000, "EUR")
    assert (
        bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "card_bin" in bad.value.details()
    )


async def run_pos(stack, state: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await pos_cli.run(
        ["--switch", stack.address(stack.topology.switch.id), "--state-dir", str(state),
         "--certs-dir", str(stack.certs_dir), *argv],
        out=out, err=err, stdin=io.StringIO(""),
    )  # fmt: skip
    return code, out.getvalue(), err.getvalue()


async def test_pos_pay_shows_the_billing_amount_and_rate(stack, tmp_path):
    card = ("--card", USD_CARD[0], "--exp", "06/29")
    code_, out, err = await run_pos(stack, tmp_path, "pay", "12.34", "EUR", *card)
    assert code_ == 0, err
    assert "13.36 USD" in out and "1 EUR = 1.08250000 USD" in out
    code_, out, err = await run_pos(stack, tmp_path, "pay", "100.00", "EUR", *card, "--dcc")
    assert code_ == 0, err
    assert "DCC offer: 111.50 USD at 1.11497500 (3.00% over the scheme's 1.08250000)" in out
    assert "111.50 USD" in out and "incl. 3.00% markup" in out and "100.00 EUR" in out


async def test_the_day_settles_and_reconciles_in_both_currencies(stack, pos, books):
    """A chargeback-bound sale, then the cut-off: reports, ledger per currency with the FX
    account, the chargeback in USD converted back to EUR, and a clean reconciliation."""
    before = await books.account("bank-b", "B-2002")
    sale = await pos.pay(USD_CARD[0], 2_000, "EUR", USD_CARD[1])  # 20.00 EUR -> 21.65 USD
    assert code(sale) == "00" and sale.billing_minor_units == 2_165
    assert code(await pos.capture(sale.transaction_id)) == "00"
    directory = Path(stack.topology.settlement.directory())
    stack.kill(stack.topology.switch.id, signal.SIGUSR1, wait=False)  # manual cut-off

    async def settled() -> bool:
        tx = await pos.get(sale.transaction_id)
        return tx.state == terminal_pb2.TRANSACTION_STATE_SETTLED

    deadline = time.monotonic() + 60
    while not await settled():
        assert time.monotonic() < deadline, "the cut-off did not settle the sale"
        await asyncio.sleep(0.2)
    # Clearing file and settlement report carry both amounts; the issuer posted the billing one.
    reports = [read_report(p) for p in (directory / "settlement").glob("*/*.json")]
    entries = {e["transaction_id"]: e for r in reports for e in r["entries"]}
    entry = entries[sale.transaction_id]
    assert (entry["amount_minor"], entry["currency"]) == (2_000, "EUR")
    assert (entry["billing_minor"], entry["billing_currency"]) == (2_165, "USD")
    assert entry["issuer_posted_minor"] == 2_165 and entry["status"] == "SETTLED"
    assert any(r["billing_totals"].get("USD") for r in reports)
    # The acquirers settle in EUR: every entry's signed net converted at its scheme's rate
    # of the day, the totals their sum (the KWD and USD sales included).
    for r in reports:
        converted, settled_any = 0, False
        for e in r["entries"]:
            if e["status"] != "SETTLED":
                continue
            settled_any = True
            sign = 1 if e["kind"] == "CAPTURE" else -1
            net = sign * e["amount_minor"] - e["interchange_minor"] - e["scheme_fee_minor"]
            rate = Decimal(e["settlement_rate"])
            assert e["settlement_currency"] == "EUR"
            assert e["settlement_net_minor"] == fx.convert(net, e["currency"], "EUR", rate)
            converted += e["settlement_net_minor"]
        expected = {"EUR": {"net_minor": converted}} if settled_any else {}
        assert r["settlement_totals"] == expected
    assert any(e["currency"] == "KWD" and e["settlement_rate"] != "1.00000000"
               for e in entries.values() if e["status"] == "SETTLED")  # fmt: skip
    # the DCC sale cleared in the cardholder's currency, unconverted: 111.50 USD
    assert any(
        (e["amount_minor"], e["currency"]) == (11_150, "USD") and "billing_currency" not in e
        for e in entries.values()
    )
    # The ledger: each currency zero-sum, the FX difference in its own account.
    async with open_store(stack.store_url) as store:
        ledger = Ledger(store)
        for cur in await ledger.currencies():
            assert (await ledger.trial_balance(cur)).total == 0, cur
        usd = await ledger.balances("USD")
        # Every converted step of the module cleared at its authorization's table but the
        # refund after the rate change: credited 55.00 USD for what clears at 54.13 USD.
        assert usd[ac.FX_DIFFERENCE] == 5_500 - 5_413
    # The issuer charges back the whole sale in USD; the switch converts it back to 20.00 EUR.
    raised = cli(
        "payswitch-chargeback", "--books", str(stack.books_dir / "bank-b.db"),
        "--dir", str(directory), "--issuer", "bank-b", "raise", "--rrn", sale.rrn,
        "--reason", "4837",
    )  # fmt: skip
    assert raised.returncode == 0, raised.stderr
    record = json.loads(raised.stdout)
    assert (record["amount_minor"], record["currency"]) == (2_165, "USD")
    ingested = cli(
        "payswitch-dispute", "--store", stack.store_url, "ingest", "--dir", str(directory)
    )
    assert ingested.returncode == 0, ingested.stderr + ingested.stdout
    async with open_store(stack.store_url) as store:
        disputes = [d for d in await store.disputes() if d.rrn == sale.rrn]
        assert [(d.amount_minor, d.currency) for d in disputes] == [(2_000, "EUR")]
        ledger = Ledger(store)
        for cur in await ledger.currencies():
            assert (await ledger.trial_balance(cur)).total == 0, cur
    after = await books.account("bank-b", "B-2002")
    assert after.balance == before.balance  # posted 21.65 USD, charged back 21.65 USD
    # The three sources agree to the minor unit in both currencies.
    ran = cli(
        "payswitch-recon", "--store", stack.store_url, "run", "--dir", str(directory),
        "--books", *map(str, sorted(stack.books_dir.glob("*.db"))),
        "--topology", str(stack.topology_path), "--json",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
