"""The terminal SDK against a fake TerminalService on a loopback grpc.aio server: request
building, retries of the very same request, error mapping, and card-data hygiene."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time

import grpc
import pytest
from termkit import TEST_IK, TEST_IKID, FakeCards

from payswitch import money
from payswitch.v1 import common_pb2
from terminals.chip import simulated_reader
from terminals.errors import (
    AccessDenied,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    Overloaded,
    Refused,
    SwitchUnavailable,
)
from terminals.retry import RetryPolicy
from terminals.sdk import (
    KeysMissing,
    SyncTerminal,
    Terminal,
    local_time_text,
    new_idempotency_key,
)
from terminals.stan import StanCounter

PAN = "4111111111111111"
MASKED = "411111******1111"
EXPIRY = "2812"
FAST = RetryPolicy(max_attempts=4, initial_backoff_s=0.001, max_backoff_s=0.004)


class Sleeps:
    """Records backoff sleeps instead of waiting: tests stay fast and deterministic."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def terminal(switch, **kw) -> Terminal:
    kw.setdefault("retry", FAST)
    kw.setdefault("stans", StanCounter(start=100))
    return Terminal(switch.address, "T-0001", "M-GROCER", **kw)


async def test_pay_builds_the_request_and_reads_the_answer(switch):
    async with terminal(switch) as t:
        r = await t.pay(1250, "EUR", PAN, EXPIRY, entry_mode="contactless")
    (req,) = switch.fake.requests["Authorize"]
    assert req.terminal_id == "T-0001" and req.merchant_id == "M-GROCER"
    assert req.stan == 100
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", req.local_time)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", req.idempotency_key)
    assert req.amount == common_pb2.Money(minor_units=1250, currency="EUR")
    assert req.entry_mode == common_pb2.ENTRY_MODE_CONTACTLESS
    assert not req.HasField("card") and PAN.encode() not in req.SerializeToString()
    (card,) = switch.fake.opened  # what the switch decrypts
    assert (card.pan, card.expiry, card.cvv2) == (PAN, EXPIRY, "")
    assert len(req.encrypted_card.ksn) == 12 and len(req.mac) == 16 and req.pin_block == b""
    assert r.approved and r.iso_code == "00" and r.code_name == "APPROVED"
    assert r.operation == "pay" and r.stan == 100 and r.idempotency_key == req.idempotency_key
    assert r.masked_pan == MASKED and r.scheme == "visa"
    assert r.amount == money.Amount(1250, "EUR")
    assert r.auth_code and r.rrn and r.transaction_id


async def test_a_decline_is_an_answer_not_an_error(switch):
    switch.fake.declines[PAN] = "51"
    async with terminal(switch) as t:
        r = await t.pay(100, "EUR", PAN, EXPIRY)
    assert not r.approved
    assert (r.iso_code, r.code_name, r.status_word) == ("51", "INSUFFICIENT_FUNDS", "DECLINED")


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED], ids=lambda c: c.name
)
async def test_retries_send_the_same_request(switch, code):
    switch.fake.push("Authorize", switch.fake.fail(code), switch.fake.fail(code))
    sleeps = Sleeps()
    async with terminal(switch, sleep=sleeps) as t:
        r = await t.pay(1250, "EUR", PAN, EXPIRY)
    sent = switch.fake.requests["Authorize"]
    assert len(sent) == 3
    assert len({m.SerializeToString(deterministic=True) for m in sent}) == 1  # key, STAN, time
    assert r.approved and r.stan == sent[0].stan
    assert len(sleeps.delays) == 2
    assert all(0 <= d <= FAST.backoff_cap(i) for i, d in enumerate(sleeps.delays))


async def test_deadline_exceeded_is_retried_with_the_same_request(switch):
    started = asyncio.Event()
    switch.fake.push("Authorize", switch.fake.hang(started))
    async with terminal(switch, deadline_s=0.2, sleep=Sleeps()) as t:
        r = await t.pay(1250, "EUR", PAN, EXPIRY)
    assert started.is_set() and r.approved
    first, second = switch.fake.requests["Authorize"]
    assert first == second


async def test_retries_stop_after_max_attempts(switch):
    unavailable = switch.fake.fail(grpc.StatusCode.UNAVAILABLE, "down")
    switch.fake.push("Authorize", *[unavailable] * 10)
    sleeps = Sleeps()
    async with terminal(switch, retry=RetryPolicy(max_attempts=3), sleep=sleeps) as t:
        await t.start()
        prepared = t.prepare_pay(1250, "EUR", PAN, EXPIRY)
        with pytest.raises(SwitchUnavailable) as err:
            await t.send(prepared)
    assert err.value.attempts == 3 and err.value.code is grpc.StatusCode.UNAVAILABLE
    assert err.value.idempotency_key == prepared.idempotency_key
    assert err.value.stan == prepared.stan
    assert len(switch.fake.requests["Authorize"]) == 3 and len(sleeps.delays) == 2


async def test_total_time_bounds_retries_of_a_silent_switch(switch):
    switch.fake.push("Authorize", *[switch.fake.hang()] * 20)
    policy = RetryPolicy(max_attempts=20, initial_backoff_s=0.01, total_timeout_s=0.5)
    started = time.monotonic()
    async with terminal(switch, deadline_s=0.15, retry=policy) as t:
        with pytest.raises(SwitchUnavailable) as err:
            await t.pay(1250, "EUR", PAN, EXPIRY)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert 2 <= err.value.attempts < 20
    assert err.value.code is grpc.StatusCode.DEADLINE_EXCEEDED


async def test_invalid_argument_is_not_retried_and_names_the_field(switch):
    switch.fake.push(
        "Authorize", switch.fake.bad_request("amount.minor_units", "amount must be positive")
    )
    async with terminal(switch, sleep=Sleeps()) as t:
        with pytest.raises(InvalidRequest) as err:
            await t.pay(1250, "EUR", PAN, EXPIRY)
    assert err.value.field == "amount.minor_units"
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "amount must be positive" in str(err.value)
    assert len(switch.fake.requests["Authorize"]) == 1


async def test_failed_precondition_is_not_retried(switch):
    switch.fake.push(
        "Void", switch.fake.fail(grpc.StatusCode.FAILED_PRECONDITION, "transaction is captured")
    )
    async with terminal(switch, sleep=Sleeps()) as t:
        with pytest.raises(Refused) as err:
            await t.void("ab" * 16)
    assert not isinstance(err.value, IdempotencyConflict)
    assert len(switch.fake.requests["Void"]) == 1


async def test_resource_exhausted_and_not_found_are_typed(switch):
    switch.fake.push("Echo", switch.fake.fail(grpc.StatusCode.RESOURCE_EXHAUSTED, "shedding"))
    async with terminal(switch, sleep=Sleeps()) as t:
        with pytest.raises(Overloaded):
            await t.echo()
        with pytest.raises(NotFound):
            await t.status(transaction_id="cd" * 16)
    assert len(switch.fake.requests["Echo"]) == 1


async def test_resending_a_prepared_request_replays_and_a_reused_key_is_refused(switch):
    async with terminal(switch) as t:
        await t.start()
        prepared = t.prepare_pay(500, "EUR", PAN, EXPIRY)
        first = await t.send(prepared)
        again = await t.send(prepared)
        assert again == first
        with pytest.raises(IdempotencyConflict) as err:
            await t.pay(600, "EUR", PAN, EXPIRY, idempotency_key=prepared.idempotency_key)
    assert err.value.field == "idempotency_key"
    assert err.value.code is grpc.StatusCode.FAILED_PRECONDITION


async def test_capture_void_refund_status_echo(switch):
    async with terminal(switch) as t:
        sale = await t.pay(4000, "EUR", PAN, EXPIRY)
        cap = await t.capture(sale.transaction_id, money.Amount(2500, "EUR"))
        assert cap.approved and cap.operation == "capture" and cap.state == "CAPTURED"
        assert cap.amount == money.Amount(2500, "EUR") and cap.masked_pan == MASKED
        ref = await t.refund(sale.transaction_id, 1000, "EUR")
        assert ref.approved and ref.original_transaction_id == sale.transaction_id
        assert ref.transaction_id != sale.transaction_id
        assert ref.amount == money.Amount(1000, "EUR") and ref.stan == 101
        view = await t.status(idempotency_key=sale.idempotency_key)
        assert view.transaction_id == sale.transaction_id and view.state == "CAPTURED"
        assert view.captured == money.Amount(2500, "EUR")
        assert view.refunded == money.Amount(1000, "EUR")
        other = await t.pay(1500, "EUR", PAN, EXPIRY)
        void = await t.void(other.transaction_id)
        assert void.approved and void.state == "VOIDED" and void.amount.minor_units == 1500
        echo = await t.echo("hi")
        assert (echo.message, echo.switch_id) == ("hi", "fake-switch")
        assert echo.round_trip_ms >= 0
    (cap_req,) = switch.fake.requests["Capture"]
    assert cap_req.amount == common_pb2.Money(minor_units=2500, currency="EUR")


async def test_full_capture_sends_no_amount(switch):
    async with terminal(switch) as t:
        sale = await t.pay(4000, "EUR", PAN, EXPIRY)
        cap = await t.capture(sale.transaction_id)
    assert not switch.fake.requests["Capture"][0].HasField("amount")
    assert cap.amount == money.Amount(4000, "EUR")


async def test_one_channel_per_terminal(switch):
    async with terminal(switch) as t:
        await t.echo()
        channel = t._channel
        await t.echo()
        await t.pay(100, "EUR", PAN, EXPIRY)
        assert t._channel is channel


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"amount_minor": 12.5}, "amount.minor_units"),
        ({"amount_minor": 0}, "amount.minor_units"),
        ({"currency": "XXX"}, "amount.currency"),
        ({"pan": "4111111111111112"}, "card.pan"),
        ({"expiry": "2813"}, "card.expiry"),
        ({"idempotency_key": "no spaces please"}, "idempotency_key"),
        ({"entry_mode": "telepathy"}, "entry_mode"),
    ],
)
async def test_local_checks_refuse_before_sending_and_keep_the_stan(switch, kwargs, field):
    args = {"amount_minor": 1250, "currency": "EUR", "pan": PAN, "expiry": EXPIRY, **kwargs}
    stans = StanCounter(start=7)
    async with terminal(switch, stans=stans) as t:
        with pytest.raises(InvalidRequest) as err:
            await t.pay(**args)
    assert err.value.field == field and err.value.code is None
    assert switch.fake.requests["Authorize"] == []
    assert stans.next() == 7


async def test_no_card_data_in_errors_reprs_or_logs(switch, caplog):
    switch.fake.push(
        "Authorize",
        switch.fake.fail(grpc.StatusCode.UNAVAILABLE, f"careless server echoes {PAN}"),
        switch.fake.fail(grpc.StatusCode.INTERNAL, f"careless server echoes {PAN}"),
    )
    caplog.set_level(logging.DEBUG)
    async with terminal(switch, stans=StanCounter(start=1), sleep=Sleeps()) as t:
        await t.start()
        prepared = t.prepare_pay(1250, "EUR", PAN, EXPIRY, pin="86420975", cvv2="3141")
        with pytest.raises(Exception) as err:
            await t.send(prepared)
    texts = [str(err.value), repr(err.value), repr(prepared), str(prepared), caplog.text]
    cvv2_alone = re.compile(r"(?<![0-9A-Za-z.])3141(?![0-9A-Za-z.])")
    for text in texts:
        assert PAN not in text and EXPIRY not in text
        assert "86420975" not in text and not cvv2_alone.search(text)
    assert MASKED in str(err.value)
    assert "retrying pay" in caplog.text  # the retry was logged, without card data
    assert err.value.__cause__ is None and err.value.__suppress_context__


async def test_pin_and_cvv2_travel_encrypted_and_reach_the_issuer(switch):
    switch.fake.pins[PAN] = "4321"
    switch.fake.cvv2s[PAN] = "987"
    async with terminal(switch) as t:
        ok = await t.pay(1250, "EUR", PAN, EXPIRY, pin="4321", cvv2="987")
        wrong_pin = await t.pay(1250, "EUR", PAN, EXPIRY, pin="4322")
        wrong_cvv = await t.pay(1250, "EUR", PAN, EXPIRY, entry_mode="manual", cvv2="988")
    assert (ok.iso_code, wrong_pin.iso_code, wrong_cvv.iso_code) == ("00", "55", "05")
    first = switch.fake.requests["Authorize"][0]
    assert len(first.pin_block) == 16
    raw = first.SerializeToString()
    assert b"4321" not in raw and b"987" not in raw and PAN.encode() not in raw
    assert switch.fake.opened[0].cvv2 == "987"


async def test_every_sale_uses_a_new_dukpt_key(switch):
    async with terminal(switch) as t:
        for _ in range(3):
            await t.pay(100, "EUR", PAN, EXPIRY)
    sent = switch.fake.requests["Authorize"]
    assert len({r.encrypted_card.ksn for r in sent}) == 3
    assert len({r.encrypted_card.ciphertext for r in sent}) == 3  # same card, other keys


async def test_chip_sale_carries_the_arqc_and_the_card_checks_the_arpc(switch):
    chips = FakeCards({})
    async with terminal(switch, chip_reader=simulated_reader(chips)) as t:
        r = await t.pay(1250, "EUR", PAN, EXPIRY, chip=True)
        switch.fake.push("Authorize", _answer_with_arpc(b"\x00" * 8))
        forged = await t.pay(1250, "EUR", PAN, EXPIRY, chip=True)
        plain = await t.pay(1250, "EUR", PAN, EXPIRY)
    req = switch.fake.requests["Authorize"][0]
    assert req.HasField("emv") and req.emv.arqc and req.emv.atc == b"\x00\x01"
    assert r.approved and r.arpc_verified is True
    assert forged.arpc_verified is False  # an ARPC the card does not accept
    assert plain.arpc_verified is None  # no chip data, nothing to check


def _answer_with_arpc(arpc: bytes):
    from payswitch.v1 import terminal_pb2

    async def action(req, _context):
        return terminal_pb2.AuthorizeResponse(
            transaction_id="f" * 32,
            response_code=common_pb2.RESPONSE_CODE_APPROVED,
            stan=req.stan,
            arpc=arpc,
        )

    return action


async def test_chip_without_a_reader_and_bad_pin_or_cvv2_are_local_errors(switch):
    stans = StanCounter(start=5)
    async with terminal(switch, stans=stans) as t:
        for kwargs, field in (
            ({"chip": True}, "chip"),
            ({"pin": "12"}, "pin"),
            ({"pin": "12345678901234"}, "pin"),
            ({"cvv2": "12a"}, "cvv2"),
        ):
            with pytest.raises(InvalidRequest) as err:
                await t.pay(100, "EUR", PAN, EXPIRY, **kwargs)
            assert err.value.field == field and err.value.code is None
            assert "12" not in err.value.message.replace(f"{4} to 12", "")
    assert switch.fake.requests["Authorize"] == [] and stans.next() == 5


async def test_prepare_needs_the_keys_and_pay_injects_them(switch):
    loads = []

    async def injector(se):
        loads.append(1)
        se._set(TEST_IKID, TEST_IK)

    async with terminal(switch, key_injector=injector) as t:
        with pytest.raises(KeysMissing):
            t.prepare_pay(100, "EUR", PAN, EXPIRY)
        await asyncio.gather(t.pay(100, "EUR", PAN, EXPIRY), t.pay(200, "EUR", PAN, EXPIRY))
        await t.start()
    assert loads == [1]  # injected once, however many sales asked at once


async def test_a_request_altered_after_its_mac_is_refused(switch):
    async with terminal(switch) as t:
        await t.start()
        prepared = t.prepare_pay(1250, "EUR", PAN, EXPIRY)
        prepared.request.amount.minor_units = 1
        with pytest.raises(AccessDenied) as err:
            await t.send(prepared)
    assert err.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert switch.fake.txs == {}


def test_generated_values_fit_the_api():
    keys = {new_idempotency_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", k) for k in keys)
    import datetime as dt

    when = dt.datetime(2026, 11, 21, 14, 3, 5, 987654, tzinfo=dt.UTC)
    assert local_time_text(when) == "2026-11-21T14:03:05"


def test_backoff_is_exponential_capped_and_fully_jittered():
    policy = RetryPolicy(initial_backoff_s=0.05, max_backoff_s=0.3, multiplier=2.0)
    assert [policy.backoff_cap(i) for i in range(5)] == [0.05, 0.1, 0.2, 0.3, 0.3]
    rng = random.Random(1)
    draws = [policy.backoff(3, rng) for _ in range(2000)]
    assert all(0.0 <= d <= 0.3 for d in draws)
    assert min(draws) < 0.01 and max(draws) > 0.29  # full jitter spans [0, cap]


async def test_total_budget_with_a_fake_clock():
    """call_with_retry stops once the next sleep would overrun total_timeout_s, and never
    gives an attempt a deadline beyond the per-attempt deadline or the budget left."""
    from terminals.retry import call_with_retry

    now = [0.0]
    timeouts: list[float] = []

    async def invoke(timeout: float) -> None:
        timeouts.append(timeout)
        now[0] += timeout  # each attempt times out after its full deadline
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata()
        )

    async def sleep(delay: float) -> None:
        now[0] += delay

    policy = RetryPolicy(max_attempts=50, initial_backoff_s=0.1, total_timeout_s=5.0)
    with pytest.raises(SwitchUnavailable) as err:
        await call_with_retry(
            invoke, policy, 2.0, rng=random.Random(3), sleep=sleep, clock=lambda: now[0]
        )
    assert now[0] <= 5.0 + 1e-9
    assert all(t <= 2.0 for t in timeouts)
    assert err.value.attempts == len(timeouts) >= 2


async def test_sync_wrapper(switch):
    def shop() -> tuple[bool, str]:
        with SyncTerminal(
            switch.address, "T-0001", "M-GROCER", retry=FAST, stans=StanCounter(start=1)
        ) as t:
            r = t.pay(1250, "EUR", PAN, EXPIRY)
            v = t.void(r.transaction_id)
            return r.approved and v.approved, t.status(transaction_id=r.transaction_id).state

    assert await asyncio.to_thread(shop) == (True, "VOIDED")


def test_channel_reconnects_quickly_unless_told_otherwise():
    t = Terminal("127.0.0.1:1", "T-0001", "M-GROCER")
    assert dict(t._options)["grpc.initial_reconnect_backoff_ms"] == 100
    t = Terminal(
        "127.0.0.1:1",
        "T-0001",
        "M-GROCER",
        channel_options=[("grpc.max_reconnect_backoff_ms", 500)],
    )
    assert dict(t._options)["grpc.max_reconnect_backoff_ms"] == 500
