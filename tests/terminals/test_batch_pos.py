"""``pos batch close`` and the SDK's close_batch against the fake switch."""

from __future__ import annotations

import io

from termkit import FakeCards

from payswitch.v1 import common_pb2, terminal_pb2
from terminals import pos


async def run_pos(switch, tmp_path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    common = ["--switch", switch.address, "--state-dir", str(tmp_path), "--deadline", "1"]
    code = await pos.run([*common, *argv], out=out, err=err, chips=FakeCards({}))
    return code, out.getvalue(), err.getvalue()


def _captured(switch, currency: str, minor: int, scheme: int) -> None:
    tx = terminal_pb2.Transaction(
        transaction_id=f"tx{currency}",
        terminal_id="T-0001",
        state=terminal_pb2.TRANSACTION_STATE_CAPTURED,
        amount=common_pb2.Money(minor_units=minor, currency=currency),
        captured=common_pb2.Money(minor_units=minor, currency=currency),
        scheme=scheme,
    )
    switch.fake.txs[tx.transaction_id] = tx


async def test_batch_close_sends_the_lines_and_prints_each_exponent(switch, tmp_path):
    _captured(switch, "KWD", 12345, common_pb2.CARD_SCHEME_UNIONPAY)
    _captured(switch, "JPY", 1500, common_pb2.CARD_SCHEME_JCB)
    code, out, err = await run_pos(
        switch,
        tmp_path,
        "batch",
        "close",
        "--line",
        "KWD:unionpay:1:12.345:0:0:0",
        "--line",
        "JPY:jcb:1:1500:0:0:0",
    )
    assert (code, err) == (0, ""), err
    assert "BATCH 1 CLOSED  IN BALANCE" in out
    assert "12.345" in out and "1500" in out and "net 12.345 KWD" in out
    sent = switch.fake.requests["CloseBatch"][0]
    assert sent.terminal_id == "T-0001" and sent.merchant_id
    assert {(t.currency, t.sale_minor) for t in sent.terminal_totals} == {
        ("KWD", 12345),
        ("JPY", 1500),
    }


async def test_batch_close_without_lines_reports_out_of_balance(switch, tmp_path):
    _captured(switch, "EUR", 725, common_pb2.CARD_SCHEME_VISA)
    code, out, _ = await run_pos(switch, tmp_path, "batch", "close")
    assert code == 0 and "OUT OF BALANCE" in out and "7.25" in out


async def test_a_malformed_line_is_a_usage_error_and_sends_nothing(switch, tmp_path):
    for bad in ("EUR:visa:1:1.005:0:0:0", "EUR:cash:1:1:0:0:0", "EUR:visa"):
        code, _, err = await run_pos(switch, tmp_path, "batch", "close", "--line", bad)
        assert code == pos.EXIT_USAGE and "--line" in err
    assert switch.fake.requests["CloseBatch"] == []
