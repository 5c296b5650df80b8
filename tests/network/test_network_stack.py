"""The real node processes (issuer, scheme, acquirers) on free loopback ports, over gRPC.

One stack serves the whole module; every test uses its own RRNs and, where it checks
balances, its own card and account.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from payswitch.cards import luhn_valid
from payswitch.v1 import common_pb2 as c
from payswitch.v1 import network_pb2 as n
from payswitch.v1 import network_pb2_grpc as g
from payswitch.world.ports import with_free_ports, write_topology
from stack.launcher import Stack

pytestmark = pytest.mark.e2e

VALID = f"{(datetime.now(UTC).year + 3) % 100:02d}12"


def _pan(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


GOOD = "4111111111111111"
SMALL = "4000000000000002"
EXPIRED = "4000000000000069"
BLOCKED = "4000000000000119"
LIMITED = "4242424242424242"
CREDIT_MC = "5105105105105100"
UNKNOWN_IN_RANGE = "4012888888881881"
NO_ISSUER_MC = "5555555555554444"
AMEX = "378282246310005"
DROP = _pan("411111000000001")
SLOW = _pan("411111000000002")
KILL = _pan("411111000000003")
FLOW = _pan("411111000000004")
SHORT = _pan("411111000000005")

ALL_PANS = [GOOD, SMALL, EXPIRED, BLOCKED, LIMITED, CREDIT_MC, UNKNOWN_IN_RANGE, NO_ISSUER_MC]
ALL_PANS += [AMEX, DROP, SLOW, KILL, FLOW, SHORT]


def _account(acct_id: str, balance: int, credit: int = 0) -> dict:
    return {"id": acct_id, "currency": "EUR", "balance": balance, "credit_limit": credit}


def _card(pan: str, account: str, **extra) -> dict:
    return {"pan": pan, "expiry": VALID, "account": account, **extra}


TOPOLOGY = {
    "acquirers": [
        {"id": "acq-main", "listen": "x", "schemes": ["visa", "mastercard"]},
        {
            "id": "acq-slow",
            "listen": "x",
            "schemes": ["visa"],
            "latency": {"distribution": "fixed", "ms": 400},
        },
        {"id": "acq-drop", "listen": "x", "schemes": ["visa"], "drop_response_rate": 1.0},
    ],
    "schemes": [{"id": "testnet", "listen": "x", "brands": ["visa", "mastercard"]}],
    "issuers": [
        {
            "id": "bank-t",
            "listen": "x",
            "bins": ["400000-499999", "510000-519999"],
            "accounts": [
                _account("T-MAIN", 1_000_000),
                _account("T-SMALL", 1_500),
                _account("T-CREDIT", 0, 50_000),
                _account("T-DROP", 100_000),
                _account("T-SLOW", 100_000),
                _account("T-KILL", 100_000),
                _account("T-FLOW", 100_000),
                _account("T-SHORT", 100_000),
            ],
            "cards": [
                _card(GOOD, "T-MAIN"),
                _card(SMALL, "T-SMALL"),
                {**_card(EXPIRED, "T-MAIN"), "expiry": "2401"},
                _card(BLOCKED, "T-MAIN", status="blocked"),
                _card(LIMITED, "T-MAIN", per_txn_limit=10_000),
                _card(CREDIT_MC, "T-CREDIT"),
                _card(DROP, "T-DROP"),
                _card(SLOW, "T-SLOW"),
                _card(KILL, "T-KILL"),
                _card(FLOW, "T-FLOW"),
                _card(SHORT, "T-SHORT"),
            ],
        }
    ],
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, ceremony) -> Iterator[Stack]:
    run_dir = tmp_path_factory.mktemp("network-stack")
    write_topology(with_free_ports(TOPOLOGY), run_dir / "topology.toml")
    ceremony(run_dir / "topology.toml")
    s = Stack(run_dir / "topology.toml", run_dir, switch=False, seed=11, ready_timeout=20)
    s.start()
    yield s
    s.stop()


@dataclass
class Clients:
    acquirers: dict[str, g.AcquirerServiceStub]
    issuer: g.IssuerServiceStub
    channels: list[grpc.aio.Channel]


@pytest.fixture
async def net(stack: Stack) -> AsyncIterator[Clients]:
    channels: list[grpc.aio.Channel] = []

    def channel(node_id: str) -> grpc.aio.Channel:
        # Acquirers are dialled as the switch, the issuer as the network operator (its books).
        kind = stack.topology.node_kind(node_id)
        as_node = stack.topology.switch.id if kind == "acquirer" else None
        creds = stack.node_credentials(as_node) if as_node else stack.operator_credentials()
        channels.append(grpc.aio.secure_channel(stack.address(node_id), creds))
        return channels[-1]

    clients = Clients(
        {a: g.AcquirerServiceStub(channel(a)) for a in ("acq-main", "acq-slow", "acq-drop")},
        g.IssuerServiceStub(channel("bank-t")),
        channels,
    )
    yield clients
    for ch in channels:
        await ch.close()


def rrn() -> str:
    return uuid.uuid4().hex[:12]


_SCHEME_OF = {"4": c.CARD_SCHEME_VISA, "5": c.CARD_SCHEME_MASTERCARD, "3": c.CARD_SCHEME_AMEX}


def auth(r: str, pan: str, amount: int, expiry: str = VALID) -> n.NetworkAuthorization:
    return n.NetworkAuthorization(
        rrn=r,
        stan=42,
        acquirer_id="acq-main",
        merchant_id="M-1",
        terminal_id="T-1",
        merchant_category_code="5411",
        amount=c.Money(minor_units=amount, currency="EUR"),
        scheme=_SCHEME_OF[pan[0]],
        entry_mode=c.ENTRY_MODE_CHIP,
        pan=pan,
        expiry=expiry,
        transmission_time_ms=int(time.time() * 1000),
    )


def follow_up(pan: str) -> dict:
    return {"bin": pan[:8], "scheme": _SCHEME_OF[pan[0]], "acquirer_id": "acq-main"}


def eur(amount: int) -> c.Money:
    return c.Money(minor_units=amount, currency="EUR")


async def account(net: Clients, acct: str) -> n.GetAccountResponse:
    return await net.issuer.GetAccount(n.GetAccountRequest(account_id=acct), timeout=2)


async def hold_or_none(net: Clients, r: str) -> n.GetHoldResponse | None:
    try:
        return await net.issuer.GetHold(n.GetHoldRequest(rrn=r), timeout=2)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND
        return None


async def test_approval_through_the_network_places_a_hold(net: Clients) -> None:
    before = await account(net, "T-MAIN")
    r = rrn()
    result = await net.acquirers["acq-main"].Authorize(auth(r, GOOD, 2_500), timeout=2)
    assert result.response_code == c.RESPONSE_CODE_APPROVED
    assert (result.rrn, result.stan, result.responder) == (r, 42, "bank-t")
    assert len(result.auth_code) == 6
    hold = await hold_or_none(net, r)
    assert hold is not None
    assert (hold.state, hold.amount, hold.account_id) == (n.HOLD_STATE_HELD, 2_500, "T-MAIN")
    after = await account(net, "T-MAIN")
    assert after.held - before.held == 2_500
    assert after.available == after.balance + after.credit_limit - after.held


@pytest.mark.parametrize(
    ("pan", "amount", "code", "responder"),
    [
        (SMALL, 1_501, c.RESPONSE_CODE_INSUFFICIENT_FUNDS, "bank-t"),
        (CREDIT_MC, 50_001, c.RESPONSE_CODE_INSUFFICIENT_FUNDS, "bank-t"),
        (EXPIRED, 100, c.RESPONSE_CODE_EXPIRED_CARD, "bank-t"),
        (BLOCKED, 100, c.RESPONSE_CODE_DO_NOT_HONOUR, "bank-t"),
        (LIMITED, 10_001, c.RESPONSE_CODE_EXCEEDS_AMOUNT_LIMIT, "bank-t"),
        (UNKNOWN_IN_RANGE, 100, c.RESPONSE_CODE_INVALID_CARD_NUMBER, "bank-t"),
        (NO_ISSUER_MC, 100, c.RESPONSE_CODE_INVALID_CARD_NUMBER, "testnet"),
        (AMEX, 100, c.RESPONSE_CODE_INVALID_TRANSACTION, "acq-main"),
    ],
)
async def test_declines_come_back_from_the_right_node(
    net: Clients, pan: str, amount: int, code: int, responder: str
) -> None:
    r = rrn()
    result = await net.acquirers["acq-main"].Authorize(auth(r, pan, amount), timeout=2)
    assert (result.response_code, result.responder, result.auth_code) == (code, responder, "")
    assert await hold_or_none(net, r) is None


async def test_capture_refund_and_idempotent_retries(net: Clients) -> None:
    acq = net.acquirers["acq-main"]
    start = await account(net, "T-FLOW")
    r = rrn()
    first = await acq.Authorize(auth(r, FLOW, 10_000), timeout=2)
    again = await acq.Authorize(auth(r, FLOW, 10_000), timeout=2)
    assert first.response_code == c.RESPONSE_CODE_APPROVED
    assert again.auth_code == first.auth_code
    assert (await account(net, "T-FLOW")).open_holds == start.open_holds + 1

    over = n.NetworkCapture(original_rrn=r, amount=eur(10_001), **follow_up(FLOW))
    assert (await acq.Capture(over, timeout=2)).response_code == c.RESPONSE_CODE_INVALID_AMOUNT
    cap = n.NetworkCapture(original_rrn=r, amount=eur(8_000), **follow_up(FLOW))
    for _ in range(2):
        answer = await acq.Capture(cap, timeout=2)
        assert (answer.response_code, answer.rrn, answer.responder) == (
            c.RESPONSE_CODE_APPROVED,
            r,
            "bank-t",
        )
    acct = await account(net, "T-FLOW")
    assert (acct.balance, acct.held) == (start.balance - 8_000, start.held)

    rev = n.NetworkReversal(original_rrn=r, amount=eur(10_000), **follow_up(FLOW))
    assert (await acq.Reverse(rev, timeout=2)).response_code == c.RESPONSE_CODE_INVALID_TRANSACTION

    refund_rrn = rrn()
    refund = n.NetworkRefund(rrn=refund_rrn, original_rrn=r, amount=eur(3_000), **follow_up(FLOW))
    for _ in range(2):
        answer = await acq.Refund(refund, timeout=2)
        assert (answer.response_code, answer.rrn) == (c.RESPONSE_CODE_APPROVED, refund_rrn)
    too_much = n.NetworkRefund(rrn=rrn(), original_rrn=r, amount=eur(5_001), **follow_up(FLOW))
    assert (await acq.Refund(too_much, timeout=2)).response_code == c.RESPONSE_CODE_INVALID_AMOUNT

    hold = await hold_or_none(net, r)
    assert hold is not None
    assert (hold.state, hold.amount, hold.posted, hold.refunded) == (
        n.HOLD_STATE_POSTED,
        10_000,
        8_000,
        3_000,
    )
    assert (await account(net, "T-FLOW")).balance == start.balance - 5_000


async def test_reversal_before_authorization_over_the_network(net: Clients) -> None:
    acq = net.acquirers["acq-main"]
    before = await account(net, "T-MAIN")
    r = rrn()
    rev = n.NetworkReversal(
        original_rrn=r, amount=eur(700), reason=n.REVERSAL_REASON_TIMEOUT, **follow_up(GOOD)
    )
    assert (await acq.Reverse(rev, timeout=2)).response_code == c.RESPONSE_CODE_APPROVED
    late = await acq.Authorize(auth(r, GOOD, 700), timeout=2)
    assert late.response_code == c.RESPONSE_CODE_INVALID_TRANSACTION
    assert await hold_or_none(net, r) is None
    assert (await account(net, "T-MAIN")).held == before.held


async def test_follow_up_for_a_bin_no_issuer_owns_is_14_at_the_scheme(net: Clients) -> None:
    rev = n.NetworkReversal(original_rrn=rrn(), amount=eur(1), **follow_up(NO_ISSUER_MC))
    answer = await net.acquirers["acq-main"].Reverse(rev, timeout=2)
    assert (answer.response_code, answer.responder) == (
        c.RESPONSE_CODE_INVALID_CARD_NUMBER,
        "testnet",
    )


async def test_slow_acquirer_answers_within_the_deadline_and_leaves_no_hold(
    net: Clients,
) -> None:
    before = await account(net, "T-SLOW")
    r = rrn()
    start = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as err:  # 400 ms of latency overrun 200 ms
        await net.acquirers["acq-slow"].Authorize(auth(r, SLOW, 1_000), timeout=0.2)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - start < 0.2 + 0.1
    # A later call with time for the latency is a barrier: once it is approved, the first
    # call's latency has long run out too, so had it been forwarded its hold would show.
    ok = await net.acquirers["acq-slow"].Authorize(auth(rrn(), SLOW, 1_000), timeout=2)
    assert ok.response_code == c.RESPONSE_CODE_APPROVED
    assert await hold_or_none(net, r) is None
    assert (await account(net, "T-SLOW")).held == before.held + 1_000


async def test_budget_too_short_for_the_next_hop_is_answered_91_on_the_way(net: Clients) -> None:
    # 30 ms: the acquirer keeps 20 ms, the scheme gets ~10 ms and must keep 20 ms itself.
    before = await account(net, "T-SHORT")
    r = rrn()
    start = time.monotonic()
    try:
        result = await net.acquirers["acq-main"].Authorize(auth(r, SHORT, 1_000), timeout=0.03)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    else:
        assert result.response_code == c.RESPONSE_CODE_ISSUER_UNAVAILABLE
        assert result.responder in ("testnet", "acq-main")
    assert time.monotonic() - start < 0.03 + 0.1
    assert await hold_or_none(net, r) is None
    assert (await account(net, "T-SHORT")).held == before.held


async def test_dropped_response_leaves_a_hold_and_no_answer(net: Clients) -> None:
    before = await account(net, "T-DROP")
    r = rrn()
    start = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await net.acquirers["acq-drop"].Authorize(auth(r, DROP, 4_000), timeout=0.4)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - start < 0.4 + 0.1
    hold = await hold_or_none(net, r)
    assert hold is not None and (hold.state, hold.amount) == (n.HOLD_STATE_HELD, 4_000)
    assert (await account(net, "T-DROP")).held == before.held + 4_000
    # what the switch does next: reverse through a healthy acquirer
    rev = n.NetworkReversal(
        original_rrn=r, amount=eur(4_000), reason=n.REVERSAL_REASON_TIMEOUT, **follow_up(DROP)
    )
    ack = await net.acquirers["acq-main"].Reverse(rev, timeout=2)
    assert ack.response_code == c.RESPONSE_CODE_APPROVED
    assert (await account(net, "T-DROP")).held == before.held


async def test_issuer_killed_with_sigkill_loses_nothing(net: Clients, stack: Stack) -> None:
    acq = net.acquirers["acq-main"]
    r = rrn()
    assert (await acq.Authorize(auth(r, KILL, 6_000), timeout=2)).response_code == (
        c.RESPONSE_CODE_APPROVED
    )
    before = await account(net, "T-KILL")
    old_pid = stack.pid("bank-t")
    assert await asyncio.to_thread(stack.kill, "bank-t", signal.SIGKILL) == -signal.SIGKILL
    await asyncio.to_thread(stack.restart, "bank-t")
    assert stack.pid("bank-t") not in (None, old_pid)

    assert await account(net, "T-KILL") == before
    hold = await hold_or_none(net, r)
    assert hold is not None and hold.state == n.HOLD_STATE_HELD
    # the scheme reconnects; a capture (idempotent, so safe to retry) goes through
    cap = n.NetworkCapture(original_rrn=r, amount=eur(6_000), **follow_up(KILL))
    deadline = time.monotonic() + 10
    while True:
        try:
            answer = await acq.Capture(cap, timeout=1)
            break
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE
            assert time.monotonic() < deadline, "scheme did not reconnect to the issuer"
            await asyncio.sleep(0.05)
    assert answer.response_code == c.RESPONSE_CODE_APPROVED
    assert (await account(net, "T-KILL")).balance == before.balance - 6_000


def test_no_pan_or_expiry_in_logs_or_books(stack: Stack) -> None:
    files = [p for p in Path(stack.run_dir).rglob("*") if p.is_file()]
    files = [p for p in files if p.name != "topology.toml"]
    assert any(p.suffix == ".log" for p in files) and any(".db" in p.name for p in files)
    blob = b"".join(p.read_bytes() for p in files)
    for pan in ALL_PANS:
        assert pan.encode() not in blob, f"PAN ending {pan[-4:]} found in {stack.run_dir}"
    assert b'"expiry"' not in blob and b"expiry" not in blob.lower()
