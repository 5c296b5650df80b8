"""The Go reference terminal (``clients/go``) against a real stack: a second implementation of
the terminal link, built from the generated Go stubs and the documentation only, run as its own
process (``.tools/goterm``, built by ``make goterm``).

It gets its initial key from ``payswitch-kif inject`` (its own RSA transport key), then takes
commands as JSON lines and prints one JSON line per answer. The switch checks every request MAC
the Go code computed (a wrong one would be UNAUTHENTICATED); the Go code checks every response
MAC (``mac_verified``). The test plays the card and the keypad: card numbers, PINs and the EMV
data the card simulator's chip produces go in as a card reader would hand them over; nothing it
prints may carry a card number.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from payswitch.v1 import network_pb2
from terminals.card_sim import CardSimulator

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
GOTERM = REPO / ".tools" / "goterm"
KIF = Path(sys.executable).parent / "payswitch-kif"
TERMINAL, MERCHANT = "T-0002", "M-GROCER"
VISA = "4111111111111111"  # bank-a, account A-1001, expiry 2812, PIN 1234 on file
PANS = (VISA,)


@pytest.fixture(scope="session")
def goterm_binary() -> Path:
    """The Go terminal, built by make (a no-op when it is current; the first build fetches the
    Go modules through the proxy into the module cache)."""
    subprocess.run(["make", "-s", "goterm"], cwd=REPO, check=True, timeout=280)
    assert GOTERM.is_file()
    return GOTERM


class GoTerminal:
    """The Go terminal process: one JSON line in, one JSON line out."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.ready: dict = {}

    @classmethod
    async def start(cls, binary: Path, stack) -> GoTerminal:
        proc = await asyncio.create_subprocess_exec(
            str(binary),
            *("-switch", stack.address(stack.topology.switch.id)),
            *("-terminal", TERMINAL, "-merchant", MERCHANT),
            *("-certs", str(stack.certs_dir), "-kif", str(KIF), "-operator", "go-e2e"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        term = cls(proc)
        term.ready = await term._read()
        assert term.ready.get("event") == "ready", term.ready
        return term

    async def _read(self) -> dict:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 120)
        if not line:
            assert self.proc.stderr is not None
            err = await self.proc.stderr.read()
            raise AssertionError(f"goterm exited: {err.decode(errors='replace')[-2000:]}")
        text = line.decode()
        for pan in PANS:
            assert pan not in text, "the Go terminal printed a card number"
        return json.loads(text)

    async def send(self, **command) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self.proc.stdin.drain()
        return await self._read()

    async def authorize(self, minor: int, **extra) -> dict:
        return await self.send(
            op="authorize", minor=minor, currency="EUR", pan=VISA, expiry="2812", **extra
        )

    async def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert await asyncio.wait_for(self.proc.wait(), 30) == 0


@pytest.fixture(scope="module")
async def go_pos(goterm_binary, stack):
    term = await GoTerminal.start(goterm_binary, stack)
    yield term
    await term.close()


@pytest.fixture(scope="module")
def chips(stack) -> CardSimulator:
    return CardSimulator(stack.topology)


def approved(result: dict) -> dict:
    """The answer of a result the switch approved and whose response MAC verified."""
    assert result["ok"] and result["mac_verified"], result
    assert result["code"] == "00", result
    return result["answer"]


async def test_injected_device_is_the_go_terminals_own(go_pos):
    assert len(go_pos.ready["ikid"]) == 16 and len(go_pos.ready["kcv"]) == 6


async def test_authorize_approves_and_holds(go_pos, books):
    before = await books.account("bank-a", "A-1001")
    answer = approved(await go_pos.authorize(1250))
    hold = await books.hold("bank-a", answer["rrn"])
    assert hold.state == network_pb2.HOLD_STATE_HELD and hold.amount == 1250
    assert answer["masked_pan"].startswith("411111") and answer["masked_pan"].endswith("1111")
    after = await books.account("bank-a", "A-1001")
    assert after.held - before.held == 1250


async def test_pin_authorization(go_pos, books):
    answer = approved(await go_pos.authorize(2000, pin="1234"))
    assert (await books.hold("bank-a", answer["rrn"])).amount == 2000
    # The block carries the PIN keyed: a wrong one is the issuer's 55, and holds nothing.
    before = await books.account("bank-a", "A-1001")
    wrong = await go_pos.authorize(2000, pin="9999")
    assert wrong["ok"] and wrong["mac_verified"] and wrong["code"] == "55", wrong
    assert (await books.account("bank-a", "A-1001")).held == before.held


async def test_chip_authorization_and_the_cards_arpc(go_pos, chips):
    emv = await chips.arqc(VISA, 990, "EUR")
    reader = {
        f.name: getattr(emv, f.name) if f.type == f.TYPE_STRING else getattr(emv, f.name).hex()
        for f in emv.DESCRIPTOR.fields
    }
    answer = approved(await go_pos.authorize(990, emv=reader))
    arpc = base64.b64decode(answer["arpc"])
    assert await chips.verify_arpc(VISA, emv, "00", arpc)


async def test_capture_refund_and_void(go_pos, books):
    sale = approved(await go_pos.authorize(3000))
    captured = approved(
        await go_pos.send(
            op="capture", transaction_id=sale["transaction_id"], minor=3000, currency="EUR"
        )
    )
    assert captured["transaction"]["state"] == "TRANSACTION_STATE_CAPTURED"
    hold = await books.hold("bank-a", sale["rrn"])
    assert hold.state == network_pb2.HOLD_STATE_POSTED and hold.posted == 3000

    refund = approved(
        await go_pos.send(
            op="refund", transaction_id=sale["transaction_id"], minor=1000, currency="EUR"
        )
    )
    assert refund["transaction"]["type"] == "TRANSACTION_TYPE_REFUND"
    assert (await books.hold("bank-a", sale["rrn"])).refunded == 1000

    other = approved(await go_pos.authorize(2500))
    voided = approved(await go_pos.send(op="void", transaction_id=other["transaction_id"]))
    assert voided["transaction"]["state"] == "TRANSACTION_STATE_VOIDED"
    assert (await books.hold("bank-a", other["rrn"])).state == network_pb2.HOLD_STATE_RELEASED

    looked_up = await go_pos.send(op="get", transaction_id=sale["transaction_id"])
    assert looked_up["ok"] and looked_up["mac_verified"], looked_up
    assert looked_up["answer"]["transaction"]["refunded"]["minor_units"] == "1000"


async def test_retry_with_the_same_bytes_gets_the_same_answer_and_holds_once(go_pos, books):
    before = await books.account("bank-a", "A-1001")
    first = await go_pos.authorize(4321, id="sale-1", key="go-retry-1")
    again = await go_pos.send(op="resend", ref="sale-1")
    approved(first)
    approved(again)
    assert again["ksn"] == first["ksn"] and again["answer"] == first["answer"]
    after = await books.account("bank-a", "A-1001")
    assert after.held - before.held == 4321 and after.open_holds == before.open_holds + 1
    # The same key under a new KSN is other content: refused, nothing held.
    other = await go_pos.authorize(4321, key="go-retry-1")
    assert other["error"]["status"] == "FAILED_PRECONDITION", other
    assert (await books.account("bank-a", "A-1001")).held == after.held


async def test_bad_input_is_decoded_from_the_bad_request_details(go_pos, books):
    before = await books.account("bank-a", "A-1001")
    refused = await go_pos.send(op="authorize", minor=100, currency="EURO", pan=VISA, expiry="2812")
    assert not refused["ok"] and refused["error"]["status"] == "INVALID_ARGUMENT", refused
    assert [v["field"] for v in refused["error"]["field_violations"]] == ["amount.currency"]
    assert (await books.account("bank-a", "A-1001")) == before
