"""Acquirer failover and circuit breakers end to end, every node a real process (SQLite store).

- acq-gamma forwards to the issuer and then never answers (drop_response_rate = 1): the
  request may have reached the issuer, so it is 91 within gamma's own timeout and reversed,
  never failed over: acq-beta never sees the RRN.
- acq-alpha's process is stopped: M-GROCER's request (with a PIN, so the block must be
  translated again for the second acquirer) fails over to acq-beta and is approved; the hold
  is on the issuer's books and the transaction records acq-beta.
- More refusals open alpha's circuit; the next requests skip it without trying to connect
  (the switch's log shows the skips and no new connection refusal). Once alpha is back and
  the cool-down is over, the half-open probe (a real authorization) closes the circuit.

The switch's JSON log is the witness of connection attempts: the connector logs every
refusal (``acquirer_refused``) and the breaker every state change (``circuit``).

Tests run in file order on one stack (they follow one outage).
"""

import asyncio
import json
import time
import tomllib
from pathlib import Path

import grpc
import pytest

from payswitch.logs import _mask_text as mask
from payswitch.v1 import network_pb2

from .clients import Books, RawTerminal, code, node_channels, switch_channel
from .conftest import DEFAULT_TOPOLOGY, injected, start_stack

pytestmark = pytest.mark.e2e

OPEN_S = 3
GAMMA_TIMEOUT_MS = 800


@pytest.fixture(scope="module")
async def failover_stack(tmp_path_factory, hsm_token):
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    doc["breaker"].update(failure_threshold=2, min_volume=100, open_s=OPEN_S)
    doc["standin"]["enabled"] = False
    doc["acquirers"].append(
        {
            "id": "acq-gamma",
            "listen": "127.0.0.1:50063",
            "schemes": ["visa", "mastercard"],
            "drop_response_rate": 1.0,
            "timeout_ms": GAMMA_TIMEOUT_MS,
        }
    )
    doc["merchants"].append(
        {"id": "M-SLOW", "name": "Slow Shop", "mcc": "5411", "acquirers": ["acq-gamma", "acq-beta"]}
    )
    doc["terminals"].append({"id": "T-0009", "merchant": "M-SLOW"})
    s = await asyncio.to_thread(
        start_stack, tmp_path_factory.mktemp("failover"), doc, store="sqlite"
    )
    channels = node_channels(s)
    second = switch_channel(s, "T-0009")
    switch = channels[s.topology.switch.id]
    se = await injected()
    yield (
        s,
        RawTerminal(switch, se),  # T-0001 at M-GROCER: acq-alpha, then acq-beta
        # a terminal of its own: its own secure element (devices are bound to one terminal)
        RawTerminal(second, await injected(), terminal_id="T-0009", merchant_id="M-SLOW"),
        Books({i.id: channels[i.id] for i in s.topology.issuers}),
    )
    for ch in (*channels.values(), second):
        await ch.close()
    await asyncio.to_thread(s.stop)


def events(log: Path, event: str, **match: str) -> list[dict]:
    """The switch's JSON log lines of ``event`` whose fields match, compared as the log wrote
    them: it masks every PAN-like digit run, even at the head of a hex transaction id."""
    out = []
    for line in log.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == event and all(rec.get(k) == mask(v) for k, v in match.items()):
            out.append(rec)
    return out


async def test_no_answer_after_the_request_left_is_91_and_reversed_not_failed_over(
    failover_stack,
):
    s, _, slow, books = failover_stack
    started = time.monotonic()
    resp = await slow.authorize(slow.auth_request("4111111111111111", 700), timeout=2.0)
    elapsed = time.monotonic() - started
    assert code(resp) == "91"
    assert elapsed < GAMMA_TIMEOUT_MS / 1000 + 0.5  # gamma's own timeout, not the 2 s budget
    assert resp.acquirer_id == "acq-gamma"
    assert (await slow.get(resp.transaction_id)).acquirer_id == "acq-gamma"
    # The issuer did act (a hold), and the reversal through gamma releases it.
    state = None
    for _ in range(150):  # bounded: 15 s
        try:
            state = (await books.hold("bank-a", resp.rrn)).state
        except grpc.aio.AioRpcError:
            state = None
        if state == network_pb2.HOLD_STATE_RELEASED:
            break
        await asyncio.sleep(0.1)
    assert state == network_pb2.HOLD_STATE_RELEASED
    assert resp.rrn not in s.log_path("acq-beta").read_text()  # beta never saw it


async def test_stopped_acquirer_fails_over_to_the_next_with_the_pin_translated_for_it(
    failover_stack,
):
    s, pos, _, books = failover_stack
    s.kill("acq-alpha")
    before = await books.account("bank-a", "A-1001")
    resp = await pos.authorize(pos.auth_request("4111111111111111", 1234, pin="1234"))
    assert code(resp) == "00", resp.message  # 55 would mean a PIN block for the wrong zone
    assert resp.acquirer_id == "acq-beta"
    assert (await pos.get(resp.transaction_id)).acquirer_id == "acq-beta"
    hold = await books.hold("bank-a", resp.rrn)
    assert (hold.state, hold.amount) == (network_pb2.HOLD_STATE_HELD, 1234)
    after = await books.account("bank-a", "A-1001")
    assert after.held == before.held + 1234
    log = s.log_path(s.topology.switch.id)
    assert events(log, "failover", tx=resp.transaction_id, to_acquirer="acq-beta")


async def test_circuit_opens_then_requests_skip_it_without_connecting(failover_stack):
    s, pos, _, _ = failover_stack
    log = s.log_path(s.topology.switch.id)
    for _ in range(10):  # bounded: the threshold is 2 refusals
        if events(log, "circuit", acquirer="acq-alpha", state="open"):
            break
        resp = await pos.pay("4111111111111111", 100)
        assert code(resp) == "00" and resp.acquirer_id == "acq-beta"
    assert events(log, "circuit", acquirer="acq-alpha", state="open")
    refused = len(events(log, "acquirer_refused", acquirer="acq-alpha"))
    changes = len(events(log, "circuit", acquirer="acq-alpha"))
    for _ in range(3):  # well inside the cool-down
        resp = await pos.pay("4111111111111111", 100)
        assert code(resp) == "00" and resp.acquirer_id == "acq-beta"
    # Routed straight to beta: no connection attempt to alpha, its circuit untouched (open).
    assert len(events(log, "acquirer_refused", acquirer="acq-alpha")) == refused
    assert len(events(log, "circuit", acquirer="acq-alpha")) == changes


async def test_half_open_probe_closes_the_circuit_once_the_acquirer_is_back(failover_stack):
    s, pos, _, books = failover_stack
    await asyncio.to_thread(s.restart, "acq-alpha")
    log = s.log_path(s.topology.switch.id)
    resp = None
    deadline = time.monotonic() + OPEN_S + 10  # bounded: the cool-down, then a probe
    while time.monotonic() < deadline:
        resp = await pos.pay("4111111111111111", 100)
        assert code(resp) == "00"
        if resp.acquirer_id == "acq-alpha":
            break
        await asyncio.sleep(0.2)
    assert resp is not None and resp.acquirer_id == "acq-alpha"
    assert events(log, "circuit", acquirer="acq-alpha", state="closed")
    assert (await books.hold("bank-a", resp.rrn)).state == network_pb2.HOLD_STATE_HELD
    again = await pos.pay("4111111111111111", 100)  # closed: alpha is first choice again
    assert again.acquirer_id == "acq-alpha"
