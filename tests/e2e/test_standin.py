"""Stand-in processing end to end, every node a real process (SQLite store).

Both acquirers' processes are stopped, so no route to any issuer is up. Then the switch:
approves within the limits by itself (STOOD_IN, its own auth code, ``stood_in`` in the
answer); declines above the floor (61), a negative-listed card (62), a blocked merchant
category (57), and a card whose cumulative window is used up (61). Each approval's advice is
an ADVICE item of the store-and-forward queue, listed through the AdminService while the
network is down (retried, never dead). When the acquirers are back, the queue delivers it: the
issuer holds it even though it takes the open-to-buy below zero, the transaction becomes
ADVISED and the queue is empty.

Tests run in file order on one stack (they follow one outage).
"""

import asyncio
import time
import tomllib

import pytest

from payswitch.v1 import admin_pb2, admin_pb2_grpc, network_pb2, terminal_pb2

from .clients import Books, RawTerminal, admin_channel, code, node_channels, switch_channel
from .conftest import DEFAULT_TOPOLOGY, injected, start_stack

pytestmark = pytest.mark.e2e

SMALL_CARD = "4000000000000002"  # bank-a A-1002: 15.00 EUR
# Advices retried quickly while the network is down, never dead-lettered during the outage.
SAF = {
    "max_attempts": 1000,
    "base_delay_s": 0.2,
    "max_delay_s": 1.0,
    "attempt_timeout_s": 1.0,
    "lease_s": 3.0,
    "poll_interval_s": 0.2,
}


@pytest.fixture(scope="module")
async def standin_stack(tmp_path_factory, hsm_token):
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    doc["breaker"].update(open_s=1)
    doc["standin"].update(
        enabled=True,
        floor={"EUR": 5000},
        cumulative={"EUR": 6000},
        blocked_mccs=["5541"],  # M-FUEL
        negative_bins=["555555"],
        advice_interval_s=0.5,
    )
    doc["saf"] = SAF
    s = await asyncio.to_thread(
        start_stack, tmp_path_factory.mktemp("standin"), doc, store="sqlite"
    )
    channels = node_channels(s)
    second = switch_channel(s, "T-0003")
    admin = admin_channel(s)
    switch = channels[s.topology.switch.id]
    se = await injected()
    yield (
        s,
        RawTerminal(switch, se),  # T-0001 at M-GROCER (mcc 5411)
        RawTerminal(second, await injected(), terminal_id="T-0003", merchant_id="M-FUEL"),
        Books({i.id: channels[i.id] for i in s.topology.issuers}),
        admin_pb2_grpc.AdminServiceStub(admin),
    )
    for ch in (*channels.values(), second, admin):
        await ch.close()
    await asyncio.to_thread(s.stop)


@pytest.fixture(scope="module")
def outage(standin_stack):
    """Both acquirers down for the module; what was stood in, for the advice test."""
    s = standin_stack[0]
    s.kill("acq-alpha")
    s.kill("acq-beta")
    return {}


async def test_stand_in_approves_within_the_limits(standin_stack, outage):
    _, pos, _, books, _ = standin_stack
    before = await books.account("bank-a", "A-1002")
    resp = await pos.pay(SMALL_CARD, 4000)  # above the account's balance, within the floor
    assert code(resp) == "00", resp.message
    assert resp.stood_in
    assert len(resp.auth_code) == 6
    tx = await pos.get(resp.transaction_id)
    assert tx.state == terminal_pb2.TRANSACTION_STATE_STOOD_IN
    assert tx.auth_code == resp.auth_code
    # Nothing reached the issuer yet.
    after = await books.account("bank-a", "A-1002")
    assert (after.balance, after.held) == (before.balance, before.held)
    outage["approved"] = resp
    outage["balance"] = before.balance
    outage["held"] = before.held


@pytest.mark.parametrize(
    ("terminal", "pan", "minor", "expected"),
    [
        ("T-0001", "4111111111111111", 5001, "61"),  # above the floor
        ("T-0001", "5555555555554444", 100, "62"),  # negative-listed BIN
        ("T-0003", "4111111111111111", 100, "57"),  # blocked merchant category
        ("T-0001", SMALL_CARD, 2001, "61"),  # 4000 + 2001 > the card's 6000 per window
    ],
)
async def test_stand_in_declines(standin_stack, outage, terminal, pan, minor, expected):
    _, pos, fuel, _, _ = standin_stack
    term = pos if terminal == "T-0001" else fuel
    resp = await term.pay(pan, minor)
    assert code(resp) == expected, resp.message
    assert not resp.stood_in and resp.auth_code == ""
    tx = await term.get(resp.transaction_id)
    assert tx.state == terminal_pb2.TRANSACTION_STATE_DECLINED


async def test_cumulative_window_allows_up_to_the_limit(standin_stack, outage):
    _, pos, _, _, _ = standin_stack
    resp = await pos.pay(SMALL_CARD, 2000)  # 4000 + 2000 = 6000: exactly the limit
    assert code(resp) == "00" and resp.stood_in
    outage["second"] = resp
    again = await pos.pay(SMALL_CARD, 1)
    assert code(again) == "61"


async def _items(admin, dead: bool) -> list[admin_pb2.SafItem]:
    resp = await admin.ListSafItems(
        admin_pb2.ListSafItemsRequest(dead_letters=dead, limit=100), timeout=5.0
    )
    return list(resp.items)


async def test_advices_wait_in_the_queue_while_the_network_is_down(standin_stack, outage):
    _, pos, _, _, admin = standin_stack
    stood_in = {outage["approved"].transaction_id, outage["second"].transaction_id}
    items = await _items(admin, dead=False)
    assert {(i.id, i.kind, i.transaction_id) for i in items} == {
        (f"ADVICE:{t}", "ADVICE", t) for t in stood_in
    }
    # Retried while every route is down (attempts counted, the reason kept), never dead.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        items = await _items(admin, dead=False)
        if all(i.attempts >= 1 for i in items):
            break
        await asyncio.sleep(0.2)
    assert items and all(i.attempts >= 1 and not i.dead for i in items)
    assert all(i.last_error == "no acquirer could take it" for i in items)
    assert await _items(admin, dead=True) == []
    for t in stood_in:
        assert (await pos.get(t)).state == terminal_pb2.TRANSACTION_STATE_STOOD_IN


async def test_advice_is_posted_when_the_network_is_back(standin_stack, outage):
    s, pos, _, books, admin = standin_stack
    await asyncio.to_thread(s.restart, "acq-alpha")
    await asyncio.to_thread(s.restart, "acq-beta")
    stood_in = [outage["approved"], outage["second"]]
    states = []
    deadline = time.monotonic() + 30  # bounded: cool-down, probe, the item's backoff
    while time.monotonic() < deadline:
        states = [(await pos.get(r.transaction_id)).state for r in stood_in]
        if all(st == terminal_pb2.TRANSACTION_STATE_ADVISED for st in states):
            break
        await asyncio.sleep(0.2)
    assert states == [terminal_pb2.TRANSACTION_STATE_ADVISED] * 2
    assert await _items(admin, dead=False) == []
    assert await _items(admin, dead=True) == []
    acct = await books.account("bank-a", "A-1002")
    # Each advice holds its amount (posted when the captured sale is presented in clearing),
    # even though the open-to-buy goes below zero: 1500 - 6000, as stand-in accepted.
    assert (acct.balance, acct.held) == (outage["balance"], outage["held"] + 6000)
    assert acct.available < 0
    for r in stood_in:
        hold = await books.hold("bank-a", r.rrn)
        assert (hold.state, hold.amount, hold.posted) == (
            network_pb2.HOLD_STATE_HELD,
            r.amount.minor_units,
            0,
        )
