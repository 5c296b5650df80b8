"""The ``pos`` command line: amount and expiry parsing, receipts, exit statuses."""

from __future__ import annotations

import io
import re
import socket

import grpc
import pytest
from termkit import FakeCards

from payswitch import money
from payswitch.v1 import common_pb2
from terminals import pos
from terminals.receipt import format_result
from terminals.results import Result

PAN = "4111111111111111"
MASKED = "411111******1111"


@pytest.mark.parametrize(
    ("text", "wire"), [("12/28", "2812"), ("01/30", "3001"), ("06/2031", "3106")]
)
def test_expiry_mm_yy_becomes_yymm(text, wire):
    assert pos.parse_expiry(text) == wire


@pytest.mark.parametrize("text", ["13/28", "00/28", "1228", "12-28", "2812", "1/28", ""])
def test_bad_expiry(text):
    with pytest.raises(pos.UsageError):
        pos.parse_expiry(text)


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.5", "EUR", 1250),
        ("12.50", "eur", 1250),
        ("1000", "JPY", 1000),
        ("1.250", "KWD", 1250),
        ("0.01", "USD", 1),
    ],
)
def test_amounts_parse_exactly(text, currency, minor):
    amount = pos.parse_amount(text, currency)
    assert amount == money.Amount(minor, currency.upper())


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("12.505", "EUR"),
        ("1.5", "JPY"),
        ("0", "EUR"),
        ("-1", "EUR"),
        ("1,50", "EUR"),
        ("1e3", "EUR"),
        ("10", "EURO"),
    ],
)
def test_bad_amounts(text, currency):
    with pytest.raises(pos.UsageError):
        pos.parse_amount(text, currency)


def _result(**kw) -> Result:
    base = dict(
        operation="pay",
        approved=True,
        iso_code="00",
        code_name="APPROVED",
        transaction_id="a" * 32,
        auth_code="A12345",
        rrn="000000000042",
        stan=42,
        masked_pan=MASKED,
        amount=money.Amount(1250, "EUR"),
        scheme="visa",
        state="",
        message="",
        idempotency_key="k1",
    )
    return Result(**{**base, **kw})


def test_receipt_shows_what_a_cardholder_needs():
    text = format_result(_result(), "M-GROCER", "T-0001")
    for part in (
        "M-GROCER",
        "T-0001",
        "SALE",
        f"{MASKED} VISA",
        "12.50 EUR",
        "APPROVED  00 APPROVED",
        "A12345",
        "000000000042",
        "000042",
        "a" * 32,
    ):
        assert part in text


def test_receipt_for_a_decline_and_currency_exponents():
    declined = _result(approved=False, iso_code="51", code_name="INSUFFICIENT_FUNDS", auth_code="")
    assert "DECLINED  51 INSUFFICIENT_FUNDS" in format_result(declined, "M", "T")
    assert "1000 JPY" in format_result(_result(amount=money.Amount(1000, "JPY")), "M", "T")
    assert "1.250 KWD" in format_result(_result(amount=money.Amount(1250, "KWD")), "M", "T")


async def run_pos(switch, tmp_path, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    common = ["--switch", switch.address, "--state-dir", str(tmp_path), "--deadline", "1"]
    code = await pos.run(
        [*common, *argv], out=out, err=err, stdin=io.StringIO(stdin), chips=FakeCards({})
    )
    return code, out.getvalue(), err.getvalue()


async def test_pin_from_stdin_after_the_card_and_cvv2(switch, tmp_path):
    switch.fake.pins[PAN] = "2468"
    pay = ("pay", "12.5", "EUR", "--exp", "12/28")
    code, out, err = await run_pos(
        switch, tmp_path, *pay, "--card", "-", "--pin", "-", stdin=f"{PAN}\n2468\n"
    )
    assert (code, err) == (0, "") and "APPROVED  00" in out
    code, out, _ = await run_pos(
        switch, tmp_path, *pay, "--card", PAN, "--pin", "-", stdin="1357\n"
    )
    assert code == 0 and "DECLINED  55 INCORRECT_PIN" in out
    code, out, _ = await run_pos(switch, tmp_path, *pay, "--card", PAN, "--cvv", "124")
    assert code == 0 and "DECLINED  05" in out
    first = switch.fake.requests["Authorize"][0]
    assert len(first.pin_block) == 16 and b"2468" not in first.SerializeToString()
    assert switch.fake.opened[2].cvv2 == "124"
    for secret in ("2468", "1357", "124"):  # standing alone (hex ids may hold any digits)
        alone = re.compile(rf"(?<![0-9A-Za-z.]){secret}(?![0-9A-Za-z.])")
        assert not alone.search(out) and not alone.search(err)


async def test_chip_reads_the_card_and_prints_the_issuer_check(switch, tmp_path):
    code, out, err = await run_pos(
        switch, tmp_path, "pay", "9", "EUR", "--card", PAN, "--exp", "12/28", "--chip"
    )
    assert (code, err) == (0, "")
    (req,) = switch.fake.requests["Authorize"]
    assert req.entry_mode == common_pb2.ENTRY_MODE_CHIP and req.emv.arqc
    assert "issuer authenticated (ARPC ok)" in out
    code, _, err = await run_pos(
        switch,
        tmp_path,
        "pay",
        "9",
        "EUR",
        "--card",
        PAN,
        "--exp",
        "12/28",
        "--chip",
        "--entry",
        "manual",
    )
    assert code == 2 and "--chip" in err


async def test_pay_prints_a_receipt_and_sends_yymm_and_minor_units(switch, tmp_path):
    code, out, err = await run_pos(
        switch, tmp_path, "pay", "12.5", "EUR", "--card", PAN, "--exp", "12/28"
    )
    assert (code, err) == (0, "")
    (req,) = switch.fake.requests["Authorize"]
    (card,) = switch.fake.opened
    assert (card.pan, card.expiry) == (PAN, "2812") and req.amount.minor_units == 1250
    assert req.entry_mode == common_pb2.ENTRY_MODE_MANUAL and not req.HasField("card")
    assert req.terminal_id == "T-0001" and req.merchant_id == "M-GROCER"
    assert "APPROVED  00 APPROVED" in out and MASKED in out and "12.50 EUR" in out
    assert f"{req.stan:06d}" in out
    assert PAN not in out and "2812" not in out and "12/28" not in out


async def test_a_decline_exits_zero(switch, tmp_path):
    switch.fake.declines[PAN] = "05"
    code, out, _ = await run_pos(
        switch, tmp_path, "pay", "1000", "JPY", "--card", "-", "--exp", "12/28", stdin=PAN
    )
    assert code == 0 and "DECLINED  05 DO_NOT_HONOUR" in out and "1000 JPY" in out
    assert switch.fake.requests["Authorize"][0].amount.minor_units == 1000


async def test_options_after_the_command_and_stans_persist(switch, tmp_path):
    for _ in range(2):
        code, _, _ = await run_pos(
            switch,
            tmp_path,
            "pay",
            "1",
            "EUR",
            "--card",
            PAN,
            "--exp",
            "12/28",
            "--terminal",
            "T-0002",
        )
        assert code == 0
    first, second = switch.fake.requests["Authorize"]
    assert first.terminal_id == second.terminal_id == "T-0002"
    assert second.stan == first.stan + 1
    assert (tmp_path / "terminal-T-0002.stan.json").exists()


async def test_bad_input_exits_2_without_calling(switch, tmp_path):
    code, out, err = await run_pos(
        switch, tmp_path, "pay", "12.505", "EUR", "--card", PAN, "--exp", "12/28"
    )
    assert code == 2 and out == "" and err.count("\n") == 1 and "decimals" in err
    code, _, err = await run_pos(
        switch, tmp_path, "pay", "1", "EUR", "--card", "4111111111111112", "--exp", "12/28"
    )
    assert code == 2 and "card.pan" in err and "4111111111111112" not in err
    assert switch.fake.requests["Authorize"] == []


async def test_switch_refusal_exits_3_with_the_field(switch, tmp_path):
    switch.fake.push("Authorize", switch.fake.bad_request("merchant_id", "is not known"))
    code, _, err = await run_pos(
        switch, tmp_path, "pay", "1", "EUR", "--card", PAN, "--exp", "12/28"
    )
    assert code == 3 and "merchant_id: is not known" in err and err.count("\n") == 1


async def test_unreachable_switch_exits_4(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nobody listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out, err = io.StringIO(), io.StringIO()
    code = await pos.run(
        ["--switch", f"127.0.0.1:{port}", "--attempts", "1", "--state-dir", str(tmp_path), "echo"],
        out=out,
        err=err,
    )
    # Nothing could be sent: said so at once, no retries, no "outcome unknown".
    text = err.getvalue()
    assert code == 4 and "nothing accepts connections" in text and "nothing was sent" in text
    assert text.count("\n") == 1 and "outcome unknown" not in text


async def test_capture_refund_void_status_echo(switch, tmp_path):
    code, _, _ = await run_pos(
        switch, tmp_path, "pay", "40", "EUR", "--card", PAN, "--exp", "12/28"
    )
    assert code == 0
    tx = switch.fake.requests["Authorize"][0]
    tx_id = next(iter(switch.fake.txs))
    code, out, _ = await run_pos(switch, tmp_path, "capture", tx_id, "25", "EUR")
    assert code == 0 and "CAPTURE" in out and "25.00 EUR" in out and MASKED in out
    code, out, _ = await run_pos(switch, tmp_path, "refund", tx_id, "10.00", "EUR")
    assert code == 0 and "REFUND" in out and "10.00 EUR" in out
    code, out, _ = await run_pos(switch, tmp_path, "status", "--key", tx.idempotency_key)
    assert code == 0 and "CAPTURED" in out and "Refunded" in out
    code, _, err = await run_pos(switch, tmp_path, "void", tx_id)
    assert code == 3 and "FAILED_PRECONDITION" in err
    code, _, err = await run_pos(switch, tmp_path, "capture", tx_id, "25")
    assert code == 2
    code, out, _ = await run_pos(switch, tmp_path, "echo")
    assert code == 0 and "fake-switch" in out


async def test_server_error_kinds_map_to_exit_codes(switch, tmp_path):
    switch.fake.push("Echo", switch.fake.fail(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy"))
    code, _, _ = await run_pos(switch, tmp_path, "echo")
    assert code == 4
    switch.fake.push("Echo", switch.fake.fail(grpc.StatusCode.INTERNAL, "bug"))
    code, _, _ = await run_pos(switch, tmp_path, "echo")
    assert code == 1
    code, _, _ = await run_pos(switch, tmp_path, "status", "f" * 32)
    assert code == 3
