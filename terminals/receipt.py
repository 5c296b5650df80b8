"""Receipt-like text for the ``pos`` command line and the demo: what a cardholder would see.

Only the masked PAN is ever printed (the switch never returns more); amounts are formatted
with the currency's ISO 4217 exponent, never through a float.
"""

from __future__ import annotations

import datetime as dt

from payswitch import money
from terminals.results import EchoResult, Result, TransactionView

_TITLES = {"pay": "SALE", "capture": "CAPTURE", "void": "VOID", "refund": "REFUND"}
_WIDTH = 40


def fmt_amount(amount: money.Amount | None) -> str:
    return amount.format() if amount is not None else "-"


def fmt_stan(stan: int) -> str:
    return f"{stan:06d}" if stan else "-"


def _lines(rows: list[tuple[str, str]]) -> list[str]:
    return [f"{label:<11}{value or '-'}" for label, value in rows]


def _card(masked_pan: str, scheme: str) -> str:
    if not masked_pan:
        return ""
    return f"{masked_pan} {scheme.upper()}" if scheme else masked_pan


def format_result(result: Result, merchant_id: str, terminal_id: str) -> str:
    """A receipt for a sale, capture, void or refund, approved or declined."""
    head = [
        f"Merchant {merchant_id}   Terminal {terminal_id}",
        "-" * _WIDTH,
        _TITLES.get(result.operation, result.operation.upper()),
    ]
    rows = [
        ("Card", _card(result.masked_pan, result.scheme)),
        ("Amount", fmt_amount(result.amount)),
        *_billing_rows(result),
        ("Result", f"{result.status_word}  {result.iso_code} {result.code_name}"),
        ("Auth code", result.auth_code),
        ("RRN", result.rrn),
        ("STAN", fmt_stan(result.stan)),
        ("Txn", result.transaction_id),
    ]
    if result.original_transaction_id:
        rows.append(("Original", result.original_transaction_id))
    if result.state:
        rows.append(("State", result.state))
    if result.arpc_verified is not None:
        rows.append(
            (
                "Chip",
                "issuer authenticated (ARPC ok)"
                if result.arpc_verified
                else "issuer NOT authenticated (no valid ARPC)",
            )
        )
    rows.append(("Key", result.idempotency_key))
    if result.message:
        rows.append(("Message", result.message))
    return "\n".join([*head, *_lines(rows), "-" * _WIDTH])


def _billing_rows(result: Result) -> list[tuple[str, str]]:
    """A foreign card's billing amount and rate (a DCC sale's markup disclosed), or nothing."""
    if result.billing is None or result.amount is None:
        return []
    rate = f"1 {result.amount.currency} = {result.conversion_rate} {result.billing.currency}"
    if result.dcc_markup_bps:
        rate += f" (incl. {result.dcc_markup_bps / 100:.2f}% markup)"
        return [("You pay", fmt_amount(result.billing)), ("DCC rate", rate)]
    return [("Billed", fmt_amount(result.billing)), ("Rate", rate)]


def format_transaction(tx: TransactionView) -> str:
    """The switch's record of one transaction (``pos status``)."""
    rows = [
        ("Txn", tx.transaction_id),
        ("Type", tx.type),
        ("State", tx.state),
        ("Merchant", tx.merchant_id),
        ("Terminal", tx.terminal_id),
        ("Card", _card(tx.masked_pan, tx.scheme)),
        ("Amount", fmt_amount(tx.amount)),
        ("Captured", fmt_amount(tx.captured) if tx.captured else ""),
        ("Refunded", fmt_amount(tx.refunded) if tx.refunded else ""),
        ("Result", f"{tx.iso_code} {tx.code_name}" if tx.iso_code else ""),
        ("Auth code", tx.auth_code),
        ("RRN", tx.rrn),
        ("STAN", fmt_stan(tx.stan)),
        ("Local time", tx.local_time),
    ]
    if tx.original_transaction_id:
        rows.append(("Original", tx.original_transaction_id))
    return "\n".join(_lines(rows))


def format_echo(echo: EchoResult) -> str:
    when = dt.datetime.fromtimestamp(echo.server_time_ms / 1000, dt.UTC)
    return (
        f"switch {echo.switch_id or '?'} answered {echo.message!r} in "
        f"{echo.round_trip_ms:.1f} ms (switch clock {when.isoformat(timespec='milliseconds')})"
    )
