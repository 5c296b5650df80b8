"""Posting rules: the balanced lines each event kind posts (accounts: ``accounts``).

A = amount, I = interchange, S = scheme fee, F = I + S, N = signed gross - F.

- CAPTURE_PRESENTED:  Dr acquirer_receivable A   / Cr merchant_payable A
- REFUND_PRESENTED:   Dr merchant_payable A      / Cr acquirer_receivable A
- CAPTURE_SETTLED / REFUND_SETTLED (gross G = +A capture, -A refund):
    Dr interchange_expense I, Dr scheme_fee_expense S / Cr acquirer_receivable F
    Dr merchant_payable F / Cr merchant_fee_income F           (fees charged on to the merchant)
    Dr settlement_cash N / Cr acquirer_receivable N            (N < 0: the other way round)
  so the receivable of a settled presentment is zero and the merchant is owed G - F.
- CHARGEBACK:         Dr merchant_payable A      / Cr acquirer_receivable A  (the scheme takes
                      the money back from the acquirer; the merchant bears it)
- REPRESENTMENT:      Dr acquirer_receivable A   / Cr chargeback_suspense A  (second presentment
                      collects it again, held in suspense until the issuer decides)
- DISPUTE_WON:        Dr chargeback_suspense A   / Cr merchant_payable A     (merchant re-credited)
- DISPUTE_LOST:       Dr chargeback_suspense A   / Cr acquirer_receivable A  (back to the issuer)
An accepted chargeback (no representment) posts nothing more: the chargeback stands.

Cross-border (issue 16): a settled capture of a converted sale also posts, in the billing
currency, X = what the issuer posted (the authorization's rate), C = the transaction amount at
the clearing-time rate (``cleared_minor``):
- FX_CAPTURE_SETTLED: Dr issuer_receivable X / Cr fx_position C / Cr fx_difference X - C
- FX_REFUND_SETTLED:  the reverse (X = what the issuer credited at the refund's rate)
so every currency still sums to zero and the rate difference sits in one explicit account.

Zero-amount lines are left out (a fee-free settlement has no fee lines).
"""

from __future__ import annotations

from collections.abc import Callable

from switch.backoffice.ledger import accounts as ac
from switch.backoffice.ledger.events import Event, EventKind
from switch.domain.ledger import LedgerLine, UnbalancedPosting

Lines = list[tuple[str, int]]


def _capture_presented(e: Event) -> Lines:
    return [(ac.acquirer_receivable(e.acquirer_id), e.amount_minor),
            (ac.merchant_payable(e.merchant_id), -e.amount_minor)]  # fmt: skip


def _refund_presented(e: Event) -> Lines:
    return [(ac.merchant_payable(e.merchant_id), e.amount_minor),
            (ac.acquirer_receivable(e.acquirer_id), -e.amount_minor)]  # fmt: skip


def _settled(sign: int) -> Callable[[Event], Lines]:
    def rule(e: Event) -> Lines:
        fees = e.interchange_minor + e.scheme_fee_minor
        net = sign * e.amount_minor - fees
        receivable = ac.acquirer_receivable(e.acquirer_id)
        return [
            (ac.interchange_expense(e.scheme), e.interchange_minor),
            (ac.scheme_fee_expense(e.scheme), e.scheme_fee_minor),
            (receivable, -fees),
            (ac.merchant_payable(e.merchant_id), fees),
            (ac.MERCHANT_FEE_INCOME, -fees),
            (ac.settlement_cash(e.acquirer_id), net),
            (receivable, -net),
        ]

    return rule


def _chargeback(e: Event) -> Lines:
    return [(ac.merchant_payable(e.merchant_id), e.amount_minor),
            (ac.acquirer_receivable(e.acquirer_id), -e.amount_minor)]  # fmt: skip


def _representment(e: Event) -> Lines:
    return [(ac.acquirer_receivable(e.acquirer_id), e.amount_minor),
            (ac.chargeback_suspense(e.acquirer_id), -e.amount_minor)]  # fmt: skip


def _won(e: Event) -> Lines:
    return [(ac.chargeback_suspense(e.acquirer_id), e.amount_minor),
            (ac.merchant_payable(e.merchant_id), -e.amount_minor)]  # fmt: skip


def _lost(e: Event) -> Lines:
    return [(ac.chargeback_suspense(e.acquirer_id), e.amount_minor),
            (ac.acquirer_receivable(e.acquirer_id), -e.amount_minor)]  # fmt: skip


def _fx_settled(sign: int) -> Callable[[Event], Lines]:
    def rule(e: Event) -> Lines:
        billed, cleared = e.amount_minor, e.cleared_minor
        return [
            (ac.issuer_receivable(e.scheme), sign * billed),
            (ac.fx_position(e.scheme), -sign * cleared),
            (ac.FX_DIFFERENCE, sign * (cleared - billed)),
        ]

    return rule


RULES: dict[EventKind, Callable[[Event], Lines]] = {
    EventKind.CAPTURE_PRESENTED: _capture_presented,
    EventKind.REFUND_PRESENTED: _refund_presented,
    EventKind.CAPTURE_SETTLED: _settled(+1),
    EventKind.REFUND_SETTLED: _settled(-1),
    EventKind.CHARGEBACK: _chargeback,
    EventKind.REPRESENTMENT: _representment,
    EventKind.DISPUTE_WON: _won,
    EventKind.DISPUTE_LOST: _lost,
    EventKind.FX_CAPTURE_SETTLED: _fx_settled(+1),
    EventKind.FX_REFUND_SETTLED: _fx_settled(-1),
}


def lines_for(event: Event) -> tuple[LedgerLine, ...]:
    """The posting's lines: the rule's, same-account lines merged, zero lines dropped."""
    for name in ("amount_minor", "interchange_minor", "scheme_fee_minor", "cleared_minor"):
        value = getattr(event, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise UnbalancedPosting(f"{name} must be a non-negative integer (minor units)")
    merged: dict[str, int] = {}
    for account, amount in RULES[event.kind](event):
        merged[account] = merged.get(account, 0) + amount
    return tuple(LedgerLine(a, event.currency, m) for a, m in merged.items() if m != 0)
