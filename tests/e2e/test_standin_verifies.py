"""Stand-in verifies what the issuer would, and the issuer refuses replayed cryptograms: every
node a real process (SQLite store), real SoftHSM keys shared by the key ceremony, real signed
requests, real chip cryptograms from the card simulator.

First, with the network up, the issuer's ARQC replay defence: the same cryptogram in a second
request, and a card's counter rolled back to 1, are declined 59 with nothing held (a counter
inside the window, out of order, is still accepted once).

Then both acquirers are stopped. Once the issuer's stand-in file carries those counters, a
cryptogram the issuer has seen and a rolled-back one are 59 in stand-in too. A good card with
its PIN, CVV2 and chip is approved in stand-in; a wrong PIN (55), a wrong CVV2 (05), a
forged ARQC (05), a blocked or lost card (62, the issuer's negative file), an expired card
(54), a card no issuer
has on file or a BIN no issuer owns (14) are declined, recorded DECLINED, with no advice owed.
A stand-in file edited on disk (every card unblocked, the MAC left as it was) is refused by
the switch: the blocked card stays 62.

Last, the network comes back: the good stand-in is advised and held, while the advice of a
stand-in the issuer refuses (a card on a USD account paid in EUR: 12) is not retried: one
attempt, dead-lettered at once, and a case in the reconciliation issues with its evidence and
who bears it (the switch), nothing held at the issuer.

Tests run in file order on one stack.
"""

import asyncio
import json
import subprocess
import sys
import time
import tomllib

import grpc
import pytest

from payswitch import stipfile
from payswitch.cards import luhn_valid
from payswitch.v1 import network_pb2, terminal_pb2
from terminals.card_sim import CardSimulator

from .clients import code
from .conftest import DEFAULT_TOPOLOGY, start_stack
from .saf_kit import World, until

pytestmark = pytest.mark.e2e

VISA = "4111111111111111"  # bank-a A-1001, PIN 1234, expiry 2812
PIN = "1234"
NO_PIN = "4000000000000002"  # bank-a A-1002, no PIN issued
BLOCKED = "4000000000000119"  # bank-a, status blocked
LOST = "5105105105105100"  # bank-b, status lost, expiry 2906
EXPIRED = "4000000000000069"  # bank-a, expired 2401
NOT_ON_FILE = "4012888888881881"  # bank-a's BIN range, on no file
USD_CARD = "2223000048400011"  # bank-b B-2002, a USD account, expiry 2906
ACQUIRERS = ("acq-alpha", "acq-beta")
SAF = {
    "max_attempts": 1000,  # a dead letter here is a refusal, never the attempt bound
    "base_delay_s": 0.2,
    "max_delay_s": 0.5,
    "attempt_timeout_s": 1.0,
    "lease_s": 3.0,
    "poll_interval_s": 0.2,
}


def _no_issuer_pan() -> str:
    """A Discover PAN (IIN 645) that no issuer of the topology owns."""
    head = "645000000000000"
    return next(head + d for d in "0123456789" if luhn_valid(head + d))


@pytest.fixture(scope="module")
async def world(tmp_path_factory, hsm_token):
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    doc["breaker"].update(open_s=1)
    doc["saf"] = SAF
    doc["standin"].update(
        enabled=True,
        floor={"EUR": 5000, "USD": 5000},
        cumulative={"EUR": 100000, "USD": 100000},
        advice_interval_s=0.5,
        refresh_s=0.2,  # the switch rereads the files often, the issuers republish often
        publish_interval_s=0.5,
    )
    stack = await asyncio.to_thread(start_stack, tmp_path_factory.mktemp("standin-verifies"), doc)
    w = await World(stack).open()
    yield w
    await w.close()


@pytest.fixture(scope="module")
def chips(world) -> CardSimulator:
    return CardSimulator(world.stack.topology)


@pytest.fixture(scope="module")
def seen() -> dict:
    """What the online part leaves for the stand-in part: cryptograms the issuer has seen."""
    return {}


async def _no_hold(world: World, issuer: str, rrn: str) -> bool:
    try:
        await world.books.hold(issuer, rrn)
    except grpc.aio.AioRpcError as err:
        return err.code() == grpc.StatusCode.NOT_FOUND
    return False


# --- the issuer's ARQC replay defence (network up) -----------------------------------------


async def test_the_same_cryptogram_twice_is_refused_with_nothing_held(world, chips):
    pos, books = world.pos, world.books
    emv = await chips.arqc(VISA, 1500, "EUR")
    first = await pos.authorize(pos.auth_request(VISA, 1500, emv=emv))
    assert code(first) == "00" and not first.stood_in, first.message
    assert await chips.verify_arpc(VISA, emv, first.response_code, first.arpc)
    held = (await books.account("bank-a", "A-1001")).held
    again = await pos.authorize(pos.auth_request(VISA, 1500, emv=emv))  # new KSN, same ARQC
    assert code(again) == "59" and again.arpc == b""
    assert await _no_hold(world, "bank-a", again.rrn)
    assert (await books.account("bank-a", "A-1001")).held == held


async def test_a_counter_rolled_back_is_refused_and_one_inside_the_window_is_not(
    world, chips, seen
):
    pos, books = world.pos, world.books
    high = await chips.arqc(VISA, 1600, "EUR", atc=500)
    assert code(await pos.authorize(pos.auth_request(VISA, 1600, emv=high))) == "00"
    seen["high"] = high
    held = (await books.account("bank-a", "A-1001")).held
    rolled_back = await chips.arqc(VISA, 1601, "EUR", atc=1)  # a genuine cryptogram, ATC 1
    resp = await pos.authorize(pos.auth_request(VISA, 1601, emv=rolled_back))
    assert code(resp) == "59" and resp.arpc == b""
    assert await _no_hold(world, "bank-a", resp.rrn)
    assert (await books.account("bank-a", "A-1001")).held == held
    late = await chips.arqc(VISA, 1602, "EUR", atc=495)  # made offline, arrives late
    assert code(await pos.authorize(pos.auth_request(VISA, 1602, emv=late))) == "00"
    seen["at"] = time.time()


# --- stand-in verifies (both acquirers down) -------------------------------------------------


def _file_updates(world: World, issuer: str) -> list[float]:
    """``published_at`` of every file of ``issuer`` the switch took (its log)."""
    out = []
    for line in world.stack.log_path(world.stack.topology.switch.id).read_text().splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "stip_file_updated" and event.get("issuer") == issuer:
                out.append(event["published_at"])
    return out


@pytest.fixture(scope="module")
async def outage(world):
    for acquirer in ACQUIRERS:
        await world.kill(acquirer)
    return {}


async def test_stand_in_refuses_a_cryptogram_the_issuer_has_seen(world, chips, seen, outage):
    """The issuer's file carries each card's ATC history: once the switch holds a file
    published after the online sales, their cryptograms (and a rolled-back one) are 59."""

    async def current() -> bool:
        published = await asyncio.to_thread(_file_updates, world, "bank-a")
        return any(p > seen["at"] for p in published)

    assert await until(current, timeout=20), "no stand-in file newer than the online sales"
    pos = world.pos
    replayed = await pos.authorize(pos.auth_request(VISA, 1600, emv=seen["high"]))
    assert code(replayed) == "59" and not replayed.stood_in, replayed.message
    rolled_back = await chips.arqc(VISA, 700, "EUR", atc=2)
    resp = await pos.authorize(pos.auth_request(VISA, 700, emv=rolled_back))
    assert code(resp) == "59" and not resp.stood_in
    for r in (replayed, resp):
        assert (await pos.get(r.transaction_id)).state == terminal_pb2.TRANSACTION_STATE_DECLINED


async def test_a_good_card_with_pin_cvv2_and_chip_is_approved_in_stand_in(world, chips, outage):
    pos = world.pos
    emv = await chips.arqc(VISA, 1000, "EUR")
    req = pos.auth_request(VISA, 1000, pin=PIN, cvv2=await chips.cvv2(VISA), emv=emv)
    resp = await pos.authorize(req)
    assert code(resp) == "00" and resp.stood_in, resp.message
    assert (await pos.get(resp.transaction_id)).state == terminal_pb2.TRANSACTION_STATE_STOOD_IN
    outage["good"] = resp


async def _request(world: World, chips: CardSimulator, case: str) -> terminal_pb2.AuthorizeRequest:
    pos = world.pos
    if case == "wrong PIN":
        return pos.auth_request(VISA, 700, pin="1235")
    if case == "PIN on a card with no PIN issued":
        return pos.auth_request(NO_PIN, 700, pin="1234")
    if case == "wrong CVV2":
        right = await chips.cvv2(VISA)
        return pos.auth_request(VISA, 700, cvv2=f"{(int(right) + 1) % 1000:03d}")
    if case == "forged ARQC":
        emv = await chips.arqc(VISA, 700, "EUR")
        emv.arqc = bytes(b ^ 0x5A for b in emv.arqc)
        return pos.auth_request(VISA, 700, emv=emv)
    if case == "ARQC for another amount":
        return pos.auth_request(VISA, 701, emv=await chips.arqc(VISA, 700, "EUR"))
    if case == "blocked card":
        return pos.auth_request(BLOCKED, 700)
    if case == "lost card":
        return pos.auth_request(LOST, 700, expiry="2906")
    if case == "expired card":
        return pos.auth_request(EXPIRED, 700, expiry="2401")
    if case == "card on no issuer's file":
        return pos.auth_request(NOT_ON_FILE, 700)
    assert case == "BIN no issuer owns"
    return pos.auth_request(_no_issuer_pan(), 700)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong PIN", "55"),
        ("PIN on a card with no PIN issued", "55"),
        ("wrong CVV2", "05"),
        ("forged ARQC", "05"),
        ("ARQC for another amount", "05"),
        ("blocked card", "62"),
        ("lost card", "62"),
        ("expired card", "54"),
        ("card on no issuer's file", "14"),
        ("BIN no issuer owns", "14"),
    ],
)
async def test_stand_in_declines_what_the_issuer_would(world, chips, outage, case, expected):
    resp = await world.pos.authorize(await _request(world, chips, case))
    assert code(resp) == expected, resp.message
    assert not resp.stood_in and resp.auth_code == ""
    assert (await world.pos.get(resp.transaction_id)).state == (
        terminal_pb2.TRANSACTION_STATE_DECLINED
    )
    assert await world.item_of(resp.transaction_id, dead=False) is None  # no advice owed


def _log_has(world: World, *words: str) -> bool:
    text = world.stack.log_path(world.stack.topology.switch.id).read_text()
    return any(all(w in line for w in words) for line in text.splitlines())


async def test_a_stand_in_file_edited_on_disk_is_refused(world, outage):
    await world.kill("bank-a")  # its last file stays; it would overwrite the edited one
    path = stipfile.path_of(world.stack.topology.standin.files_dir, "bank-a")
    original = path.read_bytes()
    body, mac = stipfile.split(original)
    doc = json.loads(body)
    assert any(c["status"] == "blocked" for c in doc["cards"])
    for card in doc["cards"]:
        card["status"] = "active"  # every card unblocked; the MAC cannot follow
    forged = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    path.write_bytes(forged + b"\n" + mac.hex().encode() + b"\n")
    try:
        refused = await until(
            lambda: asyncio.to_thread(_log_has, world, "stip_file_refused", "bank-a", "mac"),
            timeout=20,
        )
        assert refused, "the switch did not read the edited file"
        resp = await world.pos.pay(BLOCKED, 700)
        assert code(resp) == "62" and not resp.stood_in
    finally:
        path.write_bytes(original)
        await world.start("bank-a")
    assert b"4000000000000119" not in original and b"4111111111111111" not in original


async def test_a_card_on_a_usd_account_paid_in_eur_is_stood_in(world, outage):
    resp = await world.pos.pay(USD_CARD, 1000, expiry="2906")
    assert code(resp) == "00" and resp.stood_in, resp.message
    outage["refused"] = resp


# --- the advices, network back ---------------------------------------------------------------


def _advices_seen(world: World, issuer: str, rrn: str) -> int:
    """How many advices of ``rrn`` the issuer's process logged (one line per request)."""
    seen = 0
    for line in world.stack.log_path(issuer).read_text().splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            seen += event.get("event") == "advise" and event.get("rrn") == rrn
    return seen


async def _recon_cases(world: World) -> list[dict]:
    out = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "switch.cli.recon",
            "--store",
            world.stack.store_url,
            "list",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [c for c in json.loads(out.stdout) if c["type"] == "ADVICE_REFUSED"]


async def test_an_advice_the_issuer_refuses_becomes_a_case_not_a_retry(world, outage):
    for acquirer in ACQUIRERS:
        await world.start(acquirer)
    refused, good = outage["refused"], outage["good"]

    dead = await until(lambda: world.item_of(refused.transaction_id, dead=True), timeout=40)
    assert dead, "the refused advice was not dead-lettered"
    # Attempts while the network was down count too; the issuer answered once and was never
    # asked again: dead at once, far from the attempt bound.
    assert dead["attempts"] < SAF["max_attempts"]
    assert await asyncio.to_thread(_advices_seen, world, "bank-b", refused.rrn) == 1
    assert "refused 12" in dead["last_error"] and "liable: switch" in dead["last_error"]
    assert await world.item_of(refused.transaction_id, dead=False) is None

    (case,) = await _recon_cases(world)
    assert (case["kind"], case["rrn"], case["transaction_id"], case["currency"]) == (
        "STANDIN",
        refused.rrn,
        refused.transaction_id,
        "EUR",
    )
    assert case["status"] == "OPEN"
    detail = case["detail"]
    assert (detail["issuer"], detail["issuer_answer"], detail["liable"]) == (
        "bank-b",
        "12",
        "switch",
    )
    assert detail["amount_minor"] == 1000 and detail["auth_code"] == refused.auth_code
    assert USD_CARD not in json.dumps(case) and USD_CARD[-4:] not in json.dumps(detail)
    assert await _no_hold(world, "bank-b", refused.rrn)
    assert (await world.pos.get(refused.transaction_id)).state == (
        terminal_pb2.TRANSACTION_STATE_STOOD_IN
    )

    # The verified stand-in is advised and held, as before.
    async def advised() -> bool:
        tx = await world.pos.get(good.transaction_id)
        return tx.state == terminal_pb2.TRANSACTION_STATE_ADVISED

    assert await until(advised, timeout=40)
    hold = await world.books.hold("bank-a", good.rrn)
    assert (hold.state, hold.amount) == (network_pb2.HOLD_STATE_HELD, 1000)
    # The sweep and the queue left the dead letter alone: the issuer was asked once.
    still = await world.item_of(refused.transaction_id, dead=True)
    assert still["attempts"] == dead["attempts"]
    assert await asyncio.to_thread(_advices_seen, world, "bank-b", refused.rrn) == 1
