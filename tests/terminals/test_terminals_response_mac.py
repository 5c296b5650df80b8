"""The SDK's side of the MACs, against the fake switch (which MACs its answers with the same
software secure element a terminal has, ``termkit.Host``): every follow-up carries a fresh KSN
and a request MAC that verifies; an answer whose response MAC was altered, dropped, or computed
over other content is refused with ``ResponseUntrusted`` and never becomes a Result; a same
prepared request resent gets the kept answer and verifies; ``rekey_required`` reaches the
Result."""

from __future__ import annotations

import pytest
from termkit import TEST_IK, TEST_IKID

from hsm.dukpt import Ksn
from payswitch.seclink import canonical_response, operation_mac_input
from terminals.errors import ResponseUntrusted
from terminals.retry import RetryPolicy
from terminals.sdk import Terminal
from terminals.secure_element import SecureElement
from terminals.stan import StanCounter

PAN = "4111111111111111"
EXPIRY = "2812"
FAST = RetryPolicy(max_attempts=2, initial_backoff_s=0.001, max_backoff_s=0.002)


def terminal(switch) -> Terminal:
    return Terminal(switch.address, "T-0001", "M-GROCER", retry=FAST, stans=StanCounter(start=500))


async def test_follow_ups_carry_a_fresh_ksn_and_a_mac_that_verifies(switch):
    async with terminal(switch) as t:
        sale = await t.pay(4000, "EUR", PAN, EXPIRY)
        await t.capture(sale.transaction_id)
        await t.refund(sale.transaction_id, 100, "EUR")
        other = await t.pay(1500, "EUR", PAN, EXPIRY)
        await t.void(other.transaction_id)
        await t.close_batch(())
    se = SecureElement.with_initial_key(TEST_IKID, TEST_IK)
    counters = []
    for rpc in ("Capture", "Refund", "Void", "CloseBatch"):
        (req,) = switch.fake.requests[rpc]
        counter = Ksn.from_bytes(req.ksn).counter
        counters.append(counter)
        assert req.mac == se.transaction_at(counter).mac(operation_mac_input(req)), rpc
    assert len(set(counters)) == 4  # one DUKPT key per request


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: setattr(r, "mac", bytes([r.mac[0] ^ 1]) + r.mac[1:]),  # MAC altered
        lambda r: r.ClearField("mac"),  # MAC dropped
        lambda r: setattr(r, "response_code", 1),  # content altered after the MAC
    ],
    ids=["altered-mac", "no-mac", "altered-answer"],
)
async def test_an_answer_that_does_not_verify_is_not_a_result(switch, tamper):
    async with terminal(switch) as t:
        switch.fake.tamper["Authorize"] = tamper
        await t.start()
        prepared = t.prepare_pay(1250, "EUR", PAN, EXPIRY)
        with pytest.raises(ResponseUntrusted) as err:
            await t.send(prepared)
        assert err.value.operation == "pay"
        assert err.value.idempotency_key == prepared.idempotency_key
        assert "receipt" in str(err.value)
        # The terminal resends the same bytes: the switch's kept answer verifies.
        del switch.fake.tamper["Authorize"]
        result = await t.send(prepared)
        assert result.approved
        assert len(switch.fake.requests["Authorize"]) == 2

        sale = result
        switch.fake.tamper["Void"] = tamper
        with pytest.raises(ResponseUntrusted):
            await t.void(sale.transaction_id)


async def test_a_mac_for_another_operation_does_not_verify(switch):
    """The operation name is inside the MAC'd bytes: a void's answer cannot pass as a
    capture's even under the same KSN."""
    async with terminal(switch) as t:
        sale = await t.pay(900, "EUR", PAN, EXPIRY)

        def as_capture(resp) -> None:
            (req,) = switch.fake.requests["Void"]
            se = SecureElement.with_initial_key(TEST_IKID, TEST_IK)
            txn = se.transaction_at(Ksn.from_bytes(req.ksn).counter)
            resp.mac = txn.response_mac(canonical_response("capture", resp))

        switch.fake.tamper["Void"] = as_capture
        with pytest.raises(ResponseUntrusted):
            await t.void(sale.transaction_id)


async def test_rekey_required_reaches_the_result(switch):
    async with terminal(switch) as t:
        switch.fake.tamper["Authorize"] = lambda r: None  # leave the answer as sealed
        switch.fake.rekey = True
        sale = await t.pay(700, "EUR", PAN, EXPIRY)
        assert sale.approved and sale.rekey_required
        batch = await t.close_batch(())
        assert batch.rekey_required


async def test_a_status_answer_is_checked_too(switch):
    async with terminal(switch) as t:
        sale = await t.pay(800, "EUR", PAN, EXPIRY)
        view = await t.status(transaction_id=sale.transaction_id)
        assert view.transaction_id == sale.transaction_id
        (req,) = switch.fake.requests["GetTransaction"]
        assert req.ksn and len(req.mac) == 16
        switch.fake.tamper["GetTransaction"] = lambda r: setattr(
            r.transaction.amount, "minor_units", 1
        )
        with pytest.raises(ResponseUntrusted):
            await t.status(transaction_id=sale.transaction_id)
