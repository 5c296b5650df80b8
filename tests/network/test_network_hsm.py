"""The network's HSM checks over real node processes, each with its own HSM pool on a throwaway
token: PIN translation at the acquirer and verification at the issuer, CVV2, ARQC/ARPC, the
decline codes, no hold on a cryptographic decline, idempotent repeats, fail-closed start-up,
and a scan of everything the nodes wrote for PINs, PIN blocks and CVV2s.

The card side comes from ``terminals.card_sim`` (the simulator's plastic and chip); the switch's
side of the PIN (a block under ``switch/zpk.<acquirer>``) from the ``switch_pin_block`` fixture.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from acquirer import node as acquirer
from hsm.config import hsm_home
from hsm.provision import ensure_tokens
from issuer import node as issuer
from network.hsm_node import NodeHsmError
from payswitch.cards import luhn_valid
from payswitch.v1 import common_pb2 as c
from payswitch.v1 import network_pb2 as n
from payswitch.v1 import network_pb2_grpc as g
from payswitch.world.ports import with_free_ports, write_topology
from payswitch.world.topology import Topology, parse
from scheme import node as scheme
from stack.launcher import Stack
from terminals.card_sim import CardSimulator

pytestmark = pytest.mark.e2e

VALID = f"{(datetime.now(UTC).year + 3) % 100:02d}12"


def _pan(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


# Distinctive PINs (8+ digits) so that the leak scan cannot match by accident.
PIN_CARD = _pan("411111000000011")
PIN = "73920184"
WRONG_PIN = "73920185"
NO_PIN_CARD = _pan("411111000000012")
CVV_CARD = _pan("411111000000013")
CHIP_CARD = _pan("411111000000014")
SMALL_CHIP = _pan("411111000000015")
ALL_IN = _pan("411111000000016")
MC_PIN_CARD = _pan("510000000000001")
MC_PIN = "5550193847"
NO_ISSUER = _pan("620000000000001")

TOPOLOGY = {
    "acquirers": [{"id": "acq-h", "listen": "x", "schemes": ["visa", "mastercard", "unionpay"]}],
    "schemes": [
        {"id": "net-h", "listen": "x", "brands": ["visa", "mastercard", "unionpay"]},
    ],
    "issuers": [
        {
            "id": "bank-h",
            "listen": "x",
            "bins": ["400000-499999"],
            "accounts": [
                {"id": "H-MAIN", "currency": "EUR", "balance": 1_000_000},
                {"id": "H-SMALL", "currency": "EUR", "balance": 1_500},
            ],
            "cards": [
                {"pan": PIN_CARD, "expiry": VALID, "account": "H-MAIN", "pin": PIN},
                {"pan": NO_PIN_CARD, "expiry": VALID, "account": "H-MAIN"},
                {"pan": CVV_CARD, "expiry": VALID, "account": "H-MAIN"},
                {"pan": CHIP_CARD, "expiry": VALID, "account": "H-MAIN"},
                {"pan": SMALL_CHIP, "expiry": VALID, "account": "H-SMALL"},
                {"pan": ALL_IN, "expiry": VALID, "account": "H-MAIN", "pin": "40817263"},
            ],
        },
        {
            "id": "bank-m",
            "listen": "x",
            "bins": ["510000-519999"],
            "accounts": [{"id": "M-1", "currency": "EUR", "balance": 100_000}],
            "cards": [{"pan": MC_PIN_CARD, "expiry": VALID, "account": "M-1", "pin": MC_PIN}],
        },
    ],
}

# Everything secret a test sent, for the final leak scan.
SENT_PIN_BLOCKS: list[bytes] = []
SENT_CVV2: list[str] = []


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, ceremony) -> Iterator[Stack]:
    run_dir = tmp_path_factory.mktemp("network-hsm")
    ceremony(write_topology(with_free_ports(TOPOLOGY), run_dir / "topology.toml"))
    s = Stack(run_dir / "topology.toml", run_dir, switch=False, seed=5, ready_timeout=30)
    s.start()
    yield s
    s.stop()


@dataclass
class Net:
    acq: g.AcquirerServiceStub
    issuers: dict[str, g.IssuerServiceStub]
    cards: CardSimulator


@pytest.fixture
async def net(stack: Stack) -> AsyncIterator[Net]:
    # Acquirers are dialled as the switch, issuers as the network operator (their books).
    as_switch = stack.node_credentials(stack.topology.switch.id)
    operator = stack.operator_credentials()
    channels = {
        node: grpc.aio.secure_channel(
            stack.address(node),
            as_switch if stack.topology.node_kind(node) == "acquirer" else operator,
        )
        for node in stack.node_ids
    }
    yield Net(
        g.AcquirerServiceStub(channels["acq-h"]),
        {i: g.IssuerServiceStub(channels[i]) for i in ("bank-h", "bank-m")},
        CardSimulator(stack.topology),
    )
    for ch in channels.values():
        await ch.close()


def rrn() -> str:
    return uuid.uuid4().hex[:12]


_SCHEME = {"4": c.CARD_SCHEME_VISA, "5": c.CARD_SCHEME_MASTERCARD, "6": c.CARD_SCHEME_UNIONPAY}


def auth(r: str, pan: str, amount: int, **extra) -> n.NetworkAuthorization:
    return n.NetworkAuthorization(
        rrn=r,
        stan=7,
        acquirer_id="acq-h",
        merchant_id="M-1",
        terminal_id="T-1",
        merchant_category_code="5411",
        amount=c.Money(minor_units=amount, currency="EUR"),
        scheme=_SCHEME[pan[0]],
        entry_mode=c.ENTRY_MODE_CHIP,
        pan=pan,
        expiry=VALID,
        transmission_time_ms=int(time.time() * 1000),
        **extra,
    )


async def held(net: Net, account: str, bank: str = "bank-h") -> int:
    reply = await net.issuers[bank].GetAccount(n.GetAccountRequest(account_id=account), timeout=2)
    return reply.held


async def hold_or_none(net: Net, r: str, bank: str = "bank-h") -> n.GetHoldResponse | None:
    try:
        return await net.issuers[bank].GetHold(n.GetHoldRequest(rrn=r), timeout=2)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND
        return None


@pytest.fixture
def pin_block(switch_pin_block):
    def make(pan: str, pin: str) -> bytes:
        block = switch_pin_block("acq-h", pan, pin)
        SENT_PIN_BLOCKS.append(block)
        return block

    return make


# --- PIN ------------------------------------------------------------------------------------


async def test_acquirer_translates_the_pin_and_the_issuer_verifies_it(net: Net, pin_block) -> None:
    r = rrn()
    result = await net.acq.Authorize(
        auth(r, PIN_CARD, 1_000, pin_block=pin_block(PIN_CARD, PIN)), timeout=2
    )
    assert (result.response_code, result.responder) == (c.RESPONSE_CODE_APPROVED, "bank-h")
    assert (await hold_or_none(net, r)) is not None


async def test_pin_goes_to_the_zone_of_the_issuer_that_owns_the_bin(net: Net, pin_block) -> None:
    ok = await net.acq.Authorize(
        auth(rrn(), MC_PIN_CARD, 500, pin_block=pin_block(MC_PIN_CARD, MC_PIN)), timeout=2
    )
    assert (ok.response_code, ok.responder) == (c.RESPONSE_CODE_APPROVED, "bank-m")
    bad = await net.acq.Authorize(
        auth(rrn(), MC_PIN_CARD, 500, pin_block=pin_block(MC_PIN_CARD, PIN)), timeout=2
    )
    assert (bad.response_code, bad.responder) == (c.RESPONSE_CODE_INCORRECT_PIN, "bank-m")


async def test_wrong_pin_is_55_with_no_hold_and_a_repeat_gets_the_same(net: Net, pin_block) -> None:
    before = await held(net, "H-MAIN")
    r = rrn()
    first = await net.acq.Authorize(
        auth(r, PIN_CARD, 2_000, pin_block=pin_block(PIN_CARD, WRONG_PIN)), timeout=2
    )
    assert (first.response_code, first.responder, first.auth_code) == (
        c.RESPONSE_CODE_INCORRECT_PIN,
        "bank-h",
        "",
    )
    assert await hold_or_none(net, r) is None
    assert await held(net, "H-MAIN") == before
    # Same RRN again, now with the right PIN: the first answer stands (idempotent on the RRN).
    again = await net.acq.Authorize(
        auth(r, PIN_CARD, 2_000, pin_block=pin_block(PIN_CARD, PIN)), timeout=2
    )
    assert again.response_code == c.RESPONSE_CODE_INCORRECT_PIN
    assert await held(net, "H-MAIN") == before


async def test_a_block_that_does_not_open_is_96_at_the_acquirer(net: Net) -> None:
    r = rrn()
    garbled = bytes(range(16))
    SENT_PIN_BLOCKS.append(garbled)
    for block in (garbled, b"\x01" * 8):
        result = await net.acq.Authorize(auth(r, PIN_CARD, 300, pin_block=block), timeout=2)
        assert (result.response_code, result.responder) == (
            c.RESPONSE_CODE_SYSTEM_MALFUNCTION,
            "acq-h",
        )
    assert await hold_or_none(net, r) is None


async def test_pin_for_a_card_without_a_pin_on_file_is_55(net: Net, pin_block) -> None:
    r = rrn()
    block = pin_block(NO_PIN_CARD, PIN)
    result = await net.acq.Authorize(auth(r, NO_PIN_CARD, 300, pin_block=block), timeout=2)
    assert result.response_code == c.RESPONSE_CODE_INCORRECT_PIN
    assert await hold_or_none(net, r) is None


async def test_card_with_a_pin_and_a_request_without_one_is_approved_for_now(net: Net) -> None:
    result = await net.acq.Authorize(auth(rrn(), PIN_CARD, 300), timeout=2)
    assert result.response_code == c.RESPONSE_CODE_APPROVED


async def test_pin_block_for_a_bin_no_issuer_owns_is_dropped_and_the_scheme_answers_14(
    net: Net, pin_block
) -> None:
    block = pin_block(NO_ISSUER, PIN)
    result = await net.acq.Authorize(auth(rrn(), NO_ISSUER, 300, pin_block=block), timeout=2)
    assert (result.response_code, result.responder) == (
        c.RESPONSE_CODE_INVALID_CARD_NUMBER,
        "net-h",
    )


# --- CVV2 -----------------------------------------------------------------------------------


async def test_cvv2_good_is_approved_and_bad_is_05_with_no_hold(net: Net) -> None:
    cvv2 = await net.cards.cvv2(CVV_CARD)
    assert len(cvv2) == 3 and cvv2.isdigit()
    bad = f"{(int(cvv2) + 1) % 1000:03d}"
    SENT_CVV2.extend([cvv2, bad])
    ok = await net.acq.Authorize(auth(rrn(), CVV_CARD, 400, cvv2=cvv2), timeout=2)
    assert ok.response_code == c.RESPONSE_CODE_APPROVED
    before = await held(net, "H-MAIN")
    r = rrn()
    for presented in (bad, "12", "abc"):
        result = await net.acq.Authorize(auth(r, CVV_CARD, 400, cvv2=presented), timeout=2)
        assert (result.response_code, result.responder) == (
            c.RESPONSE_CODE_DO_NOT_HONOUR,
            "bank-h",
        )
    assert await hold_or_none(net, r) is None
    assert await held(net, "H-MAIN") == before


# --- EMV ------------------------------------------------------------------------------------


async def test_good_arqc_is_approved_with_an_arpc_the_card_accepts(net: Net) -> None:
    emv = await net.cards.arqc(CHIP_CARD, 1_234, "EUR")
    r = rrn()
    first = await net.acq.Authorize(auth(r, CHIP_CARD, 1_234, emv=emv), timeout=2)
    assert first.response_code == c.RESPONSE_CODE_APPROVED
    assert len(first.arpc) == 8
    assert await net.cards.verify_arpc(CHIP_CARD, emv, first.response_code, first.arpc)
    # An ARPC binds the answer: the card refuses it for another response code.
    assert not await net.cards.verify_arpc(CHIP_CARD, emv, "05", first.arpc)
    # Repeat of the RRN: same answer, same auth code, same ARPC, one hold.
    again = await net.acq.Authorize(auth(r, CHIP_CARD, 1_234, emv=emv), timeout=2)
    assert (again.response_code, again.auth_code, again.arpc) == (
        first.response_code,
        first.auth_code,
        first.arpc,
    )
    hold = await hold_or_none(net, r)
    assert hold is not None and hold.amount == 1_234


async def test_bad_arqc_is_05_with_no_arpc_and_no_hold(net: Net) -> None:
    before = await held(net, "H-MAIN")
    emv = await net.cards.arqc(CHIP_CARD, 800, "EUR")
    tampered = n.EmvData()
    tampered.CopyFrom(emv)
    tampered.arqc = bytes([emv.arqc[0] ^ 0x01]) + emv.arqc[1:]
    other_amount = await net.cards.arqc(CHIP_CARD, 801, "EUR")  # genuine, for 8.01
    other_currency = n.EmvData()
    other_currency.CopyFrom(emv)
    other_currency.transaction_currency_code = b"\x08\x40"  # USD
    short = n.EmvData()
    short.CopyFrom(emv)
    short.atc = b"\x01"
    for bad in (tampered, other_amount, other_currency, short):
        r = rrn()
        result = await net.acq.Authorize(auth(r, CHIP_CARD, 800, emv=bad), timeout=2)
        assert (result.response_code, result.responder, result.arpc) == (
            c.RESPONSE_CODE_DO_NOT_HONOUR,
            "bank-h",
            b"",
        )
        assert await hold_or_none(net, r) is None
    assert await held(net, "H-MAIN") == before


async def test_a_books_decline_after_a_good_arqc_carries_an_arpc_for_its_code(net: Net) -> None:
    emv = await net.cards.arqc(SMALL_CHIP, 1_501, "EUR")
    r = rrn()
    first = await net.acq.Authorize(auth(r, SMALL_CHIP, 1_501, emv=emv), timeout=2)
    assert first.response_code == c.RESPONSE_CODE_INSUFFICIENT_FUNDS
    assert await net.cards.verify_arpc(SMALL_CHIP, emv, "51", first.arpc)
    again = await net.acq.Authorize(auth(r, SMALL_CHIP, 1_501, emv=emv), timeout=2)
    assert (again.response_code, again.arpc) == (first.response_code, first.arpc)
    assert await hold_or_none(net, r) is None


async def test_pin_cvv2_and_arqc_together_in_one_request(net: Net, pin_block) -> None:
    cvv2 = await net.cards.cvv2(ALL_IN)
    SENT_CVV2.append(cvv2)
    emv = await net.cards.arqc(ALL_IN, 999, "EUR")
    ok = await net.acq.Authorize(
        auth(rrn(), ALL_IN, 999, pin_block=pin_block(ALL_IN, "40817263"), cvv2=cvv2, emv=emv),
        timeout=2,
    )
    assert ok.response_code == c.RESPONSE_CODE_APPROVED
    assert await net.cards.verify_arpc(ALL_IN, emv, "00", ok.arpc)
    # A wrong PIN with a genuine ARQC: 55, and the card gets an ARPC for 55.
    emv2 = await net.cards.arqc(ALL_IN, 999, "EUR")
    r = rrn()
    bad = await net.acq.Authorize(
        auth(r, ALL_IN, 999, pin_block=pin_block(ALL_IN, WRONG_PIN), cvv2=cvv2, emv=emv2),
        timeout=2,
    )
    assert bad.response_code == c.RESPONSE_CODE_INCORRECT_PIN
    assert await net.cards.verify_arpc(ALL_IN, emv2, "55", bad.arpc)
    assert await hold_or_none(net, r) is None


# --- start-up and secrets -------------------------------------------------------------------


async def test_nodes_without_their_keys_refuse_to_start() -> None:
    doc = {
        "acquirers": [{"id": "acq-nokeys", "listen": "x", "schemes": ["visa"]}],
        "schemes": [{"id": "net-nokeys", "listen": "x", "brands": ["visa"]}],
        "issuers": [{"id": "bank-nokeys", "listen": "x", "bins": ["400000-499999"]}],
    }
    topo: Topology = parse(with_free_ports(doc))  # no ceremony for these ids
    # No token of their own yet: no PIN file, no start.
    with pytest.raises(NodeHsmError, match="acq-nokeys: HSM refused: no PIN file"):
        await acquirer.create(topo, "acq-nokeys")
    # Their own tokens (payswitch-hsm init), still without keys: refused, naming the key.
    await asyncio.to_thread(ensure_tokens, hsm_home(), ["acq-nokeys", "bank-nokeys"])
    with pytest.raises(NodeHsmError, match=r"acq-nokeys/zpk\.switch/v1"):
        await acquirer.create(topo, "acq-nokeys")
    with pytest.raises(NodeHsmError, match="bank-nokeys/pvk/v1"):
        await issuer.create(topo, "bank-nokeys")
    node = await scheme.create(topo, "net-nokeys")  # a scheme holds no keys
    await node.close()


def test_the_pin_stays_out_of_the_card_repr(stack: Stack) -> None:
    card = stack.topology.issuer("bank-h").cards[0]
    assert card.pin == PIN and PIN not in repr(card)


def test_no_pin_pin_block_cvv2_or_pan_in_logs_or_books(stack: Stack) -> None:
    assert SENT_PIN_BLOCKS and SENT_CVV2, "run with the tests above"
    files = [p for p in Path(stack.run_dir).rglob("*") if p.is_file()]
    files = [p for p in files if p.name != "topology.toml"]
    assert any(p.suffix == ".log" for p in files) and any(".db" in p.name for p in files)
    blob = b"".join(p.read_bytes() for p in files)
    for pin in (PIN, WRONG_PIN, MC_PIN, "40817263"):
        assert pin.encode() not in blob, "a PIN was written"
    for block in SENT_PIN_BLOCKS:
        for form in (block, block.hex().encode(), block.hex().upper().encode()):
            assert form not in blob, "a PIN block was written"
        assert base64.b64encode(block).rstrip(b"=") not in blob, "a PIN block was written"
    for cvv2 in SENT_CVV2:
        assert f'"{cvv2}"'.encode() not in blob, "a CVV2 was written"
    # Field names, case-insensitive, in what the nodes wrote as data (logs, stores, books,
    # stand-in files): not in certificates and keys, random base64 where "CcvV" turns up by
    # chance (a CI run found one in a fresh CA's certificate); the values above are searched
    # in every file.
    written = [p for p in files if p.suffix not in (".pem", ".key")]
    for key in (b"cvv", b"pin_block", b"pinblock", b'"pin"'):
        where = [_context(p, key) for p in written if key in p.read_bytes().lower()]
        assert not where, f"{key!r} appears in what the nodes wrote: {where}"
    for pan in (PIN_CARD, NO_PIN_CARD, CVV_CARD, CHIP_CARD, SMALL_CHIP, ALL_IN, MC_PIN_CARD):
        assert pan.encode() not in blob, f"PAN ending {pan[-4:]} was written"


def _context(path: Path, key: bytes) -> str:
    """Where ``key`` first occurs in a file, with the text around it (a failure's evidence:
    the checks above already proved no PAN, PIN or CVV2 value is in the file)."""
    data = path.read_bytes()
    at = data.lower().find(key)
    return f"{path.name}: {data[max(0, at - 300) : at + 200]!r}"
