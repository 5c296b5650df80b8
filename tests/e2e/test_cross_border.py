"""End to end, cross-border (issue 16): a card billed in another currency than the sale's.

Every node a real process on both store backends (the session stack). Rates come from the
default topology's tables (units per EUR: USD 1.0825, JPY 161.37, KWD 0.3331); each expected
amount is worked out here with ``payswitch.fx``, so the books must agree to the minor unit.
"""

import asyncio
import tomllib
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from payswitch import fx
from payswitch.seclink import canonical_response
from payswitch.v1 import network_pb2, terminal_pb2
from payswitch.world.ports import write_topology

from .clients import code

pytestmark = pytest.mark.e2e

USD_CARD = ("2223000048400011", "2906")  # bank-b, account B-2002 in USD (Mastercard: banknet)
JPY_CARD = ("3530111333300000", "2903")  # bank-c, account C-3002 in JPY (JCB: globalnet)
EUR_USD = Decimal("1.08250000")
KWD_JPY = Decimal("484.44911438")  # 161.37 / 0.3331, half-up to 8 places


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
