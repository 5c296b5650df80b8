"""The published terminal vectors (docs/vectors/terminal-v1.json) against the terminal side:
the secure element's keys, card encryption, PIN blocks and MACs; the canonical forms of
``payswitch.seclink``; and the SDK itself, which must build each request of the file byte for
byte (same key, counter, clock and STAN) and accept each sample answer, and refuse it with one
byte changed. The file is what ``make vectors`` makes. A second implementation (the Go
terminal) checks itself against the same file; the DUKPT keys in it are checked against the
values X9 published in tests/hsm/test_dukpt.py, and the MACs against SoftHSM in
tests/hsm/test_hsm_vectors.py."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from google.protobuf import json_format

from hsm.dukpt import KeyUsage, derivation_data
from payswitch import seclink
from payswitch.v1 import terminal_pb2
from terminals import pinpad
from terminals.errors import ResponseUntrusted
from terminals.pinpad import sim_decipher_pin_block, sim_encipher_pin_block
from terminals.retry import RetryPolicy
from terminals.sdk import Terminal
from terminals.secure_element import SecureElement
from terminals.stan import StanCounter

REPO = Path(__file__).resolve().parents[2]
VECTORS = json.loads((REPO / "docs" / "vectors" / "terminal-v1.json").read_text())
DUKPT = VECTORS["dukpt"]
CASES = VECTORS["cases"]
IKID = bytes.fromhex(DUKPT["initial_key_id"])
IK = bytes.fromhex(DUKPT["initial_key"])
KEYS = {t["counter"]: t for t in DUKPT["transactions"]}
FAST = RetryPolicy(max_attempts=1)

REQUESTS = {
    "authorize": terminal_pb2.AuthorizeRequest,
    "capture": terminal_pb2.CaptureRequest,
    "void": terminal_pb2.VoidRequest,
    "refund": terminal_pb2.RefundRequest,
    "get_transaction": terminal_pb2.GetTransactionRequest,
    "close_batch": terminal_pb2.CloseBatchRequest,
}
RESPONSES = {
    "authorize": terminal_pb2.AuthorizeResponse,
    "capture": terminal_pb2.CaptureResponse,
    "void": terminal_pb2.VoidResponse,
    "refund": terminal_pb2.RefundResponse,
    "get_transaction": terminal_pb2.GetTransactionResponse,
    "close_batch": terminal_pb2.CloseBatchResponse,
}
IDS = [c["name"] for c in CASES]


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def request_of(case):
    return json_format.ParseDict(case["request"], REQUESTS[case["operation"]]())


def response_of(case):
    return json_format.ParseDict(case["response"], RESPONSES[case["operation"]]())


def _aes(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - X9.24-3 check
    return enc.update(block) + enc.finalize()


def test_the_file_is_what_make_vectors_makes():
    done = subprocess.run(
        [sys.executable, "scripts/make_vectors.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert VECTORS["schema"] == "payswitch-terminal-vectors/1"
    assert {c["operation"] for c in CASES} == set(REQUESTS)


def test_every_key_of_the_file_follows_from_the_bdk_by_x9_24_3():
    """The host derivation written out here, step by step, from the BDK in the file."""
    bdk = h(DUKPT["bdk"])
    ik = _aes(bdk, derivation_data(KeyUsage.KEY_DERIVATION_INITIAL, IKID))
    assert ik == IK
    usages = {
        "pin_encryption": 0x1000,
        "mac_generation": 0x2000,
        "mac_verification": 0x2001,
        "data_encryption": 0x3000,
    }
    for counter, entry in KEYS.items():
        key, working = ik, 0
        for bit in range(31, -1, -1):
            if counter >> bit & 1:
                working |= 1 << bit
                key = _aes(key, derivation_data(KeyUsage.KEY_DERIVATION, IKID, working))
        assert key.hex().upper() == entry["derivation_key"], counter
        assert entry["ksn"] == (IKID + counter.to_bytes(4, "big")).hex().upper()
        for name, usage in usages.items():
            block = derivation_data(KeyUsage(usage), IKID, counter)
            assert _aes(key, block).hex().upper() == entry["keys"][name], (counter, name)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_secure_element_and_canonical_forms_reproduce_each_case(case):
    op = case["operation"]
    txn = SecureElement.with_initial_key(IKID, IK).transaction_at(case["counter"])
    assert bytes(txn.ksn).hex().upper() == case["ksn"]
    req = request_of(case)
    form = seclink.mac_input(req) if op == "authorize" else seclink.operation_mac_input(req)
    assert form.hex().upper() == case["request_mac_input"]
    assert txn.mac(form) == bytes(req.mac) == h(case["request_mac"])
    resp = response_of(case)
    answer = seclink.canonical_response(op, resp)
    assert answer.hex().upper() == case["response_mac_input"]
    assert txn.response_mac(answer) == bytes(resp.mac) == h(case["response_mac"])
    if op != "authorize":
        assert bytes(req.ksn) == h(case["ksn"])
        return
    card = case["card"]
    plaintext = seclink.card_plaintext(card["pan"], card["expiry"], card["cvv2"])
    assert plaintext.hex().upper() == case["card_plaintext"]
    assert seclink.parse_card_data(plaintext) == terminal_pb2.CardData(**card)
    assert txn.encrypt_card_data(plaintext) == h(case["card_ciphertext"])
    assert bytes(req.encrypted_card.ciphertext) == h(case["card_ciphertext"])
    if "emv_bytes" in case:
        assert seclink.emv_bytes(req.emv).hex().upper() == case["emv_bytes"]
    pin = case.get("pin")
    if pin is None:
        assert not req.pin_block
        return
    block = sim_encipher_pin_block(txn.pin_encrypt_block, pin["pin"], card["pan"], h(pin["fill"]))
    assert block == bytes(req.pin_block) == h(pin["pin_block"])
    pin_key = h(KEYS[case["counter"]]["keys"]["pin_encryption"])
    assert sim_decipher_pin_block(pin_key, block, card["pan"]) == pin["pin"]


def _terminal(switch, case, **kw) -> Terminal:
    """An SDK terminal holding the file's test key, one counter before the case's, with the
    file's clock; STAN and idempotency key come from the case."""
    req = case["request"]
    clock = dt.datetime.fromisoformat(req.get("local_time", "2026-11-21T14:03:05"))
    return Terminal(
        switch.address,
        VECTORS["terminal_id"],
        VECTORS["merchant_id"],
        retry=FAST,
        clock=lambda: clock,
        stans=StanCounter(start=req.get("stan", 1)),
        secure_element=SecureElement.with_initial_key(IKID, IK, case["counter"] - 1),
        **kw,
    )


def _answer_with(resp):
    async def action(_req, _context):
        return resp

    return action


def _tampered(case):
    resp = response_of(case)
    resp.mac = bytes([resp.mac[0] ^ 0x80]) + resp.mac[1:]
    return resp


async def _run(terminal: Terminal, case):
    """The SDK's own call for the case's operation (built and sent by the SDK)."""
    req = request_of(case)
    op = case["operation"]
    if op == "authorize":
        card = case["card"]
        pin = case.get("pin")
        prepared = terminal.prepare_pay(
            req.amount.minor_units,
            req.amount.currency,
            card["pan"],
            card["expiry"],
            terminal_pb2.AuthorizeRequest.DESCRIPTOR.fields_by_name["entry_mode"]
            .enum_type.values_by_number[req.entry_mode]
            .name.removeprefix("ENTRY_MODE_")
            .lower(),
            req.idempotency_key,
            pin=pin["pin"] if pin else None,
            cvv2=card["cvv2"] or None,
            emv=req.emv if req.HasField("emv") else None,
        )
        return await terminal.send(prepared)
    if op == "capture":
        from payswitch.money import Amount

        amount = Amount(req.amount.minor_units, req.amount.currency)
        return await terminal.send(
            terminal.prepare_capture(req.transaction_id, amount, req.idempotency_key)
        )
    if op == "void":
        return await terminal.send(terminal.prepare_void(req.transaction_id, req.idempotency_key))
    if op == "refund":
        return await terminal.send(
            terminal.prepare_refund(
                req.original_transaction_id,
                req.amount.minor_units,
                req.amount.currency,
                req.idempotency_key,
            )
        )
    if op == "get_transaction":
        return await terminal.status(idempotency_key=req.idempotency_key)
    from terminals.batch import BatchLine

    lines = [BatchLine.from_proto(t) for t in req.terminal_totals]
    return await terminal.close_batch(lines, req.idempotency_key)


RPC = {
    "authorize": "Authorize",
    "capture": "Capture",
    "void": "Void",
    "refund": "Refund",
    "get_transaction": "GetTransaction",
    "close_batch": "CloseBatch",
}


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_the_sdk_sends_each_request_byte_for_byte_and_checks_its_answer(
    switch, monkeypatch, case
):
    pin = case.get("pin")
    if pin is not None:  # the PIN pad's random half, fixed to the file's
        monkeypatch.setattr(pinpad, "os", types.SimpleNamespace(urandom=lambda _n: h(pin["fill"])))
    rpc = RPC[case["operation"]]
    switch.fake.push(rpc, _answer_with(response_of(case)))
    async with _terminal(switch, case) as terminal:
        await terminal.start()
        result = await _run(terminal, case)
    (sent,) = switch.fake.requests[rpc]
    assert sent.SerializeToString(deterministic=True) == request_of(case).SerializeToString(
        deterministic=True
    )
    assert result is not None
    switch.fake.push(rpc, _answer_with(_tampered(case)))
    async with _terminal(switch, case) as terminal:
        await terminal.start()
        with pytest.raises(ResponseUntrusted):
            await _run(terminal, case)
