"""The terminal's side of a batch: its own running totals, and the switch's close answer.

``BatchTotals`` is what a terminal keeps between two closes: per (currency, scheme) the count
and amount of captured sales and of refunds, and the count of voids. ``record`` it with each
approved capture, refund and void; ``Terminal.close_batch`` sends it (ISO 8583 0500) and gets
the switch's totals and the reconciliation back (0510). Amounts are integer minor units;
``format_close`` shows them with each currency's own ISO 4217 exponent (JPY 0, EUR 2, KWD 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from payswitch import money
from payswitch.cards import Scheme
from payswitch.v1 import common_pb2, terminal_pb2

FIGURES = ("sale_count", "sale_minor", "refund_count", "refund_minor", "void_count")
_SCHEME_TO_PROTO = {s: getattr(common_pb2, f"CARD_SCHEME_{s.name}") for s in Scheme}
_PROTO_TO_SCHEME = {v: k.value for k, v in _SCHEME_TO_PROTO.items()}


@dataclass(slots=True)
class BatchLine:
    currency: str
    scheme: str  # "visa", "mastercard", ...
    sale_count: int = 0
    sale_minor: int = 0
    refund_count: int = 0
    refund_minor: int = 0
    void_count: int = 0

    def to_proto(self) -> terminal_pb2.BatchTotal:
        return terminal_pb2.BatchTotal(
            currency=self.currency,
            scheme=_SCHEME_TO_PROTO[Scheme(self.scheme)],
            **{f: getattr(self, f) for f in FIGURES},
        )

    @classmethod
    def from_proto(cls, t: terminal_pb2.BatchTotal) -> BatchLine:
        scheme = _PROTO_TO_SCHEME.get(t.scheme, "unknown")
        return cls(t.currency, scheme, *(getattr(t, f) for f in FIGURES))


@dataclass
class BatchTotals:
    """A terminal's own totals since its last close."""

    lines: dict[tuple[str, str], BatchLine] = field(default_factory=dict)

    def _line(self, currency: str, scheme: str) -> BatchLine:
        money.exponent(currency)  # a known currency, or MoneyError
        key = (currency, Scheme(scheme).value)
        return self.lines.setdefault(key, BatchLine(*key))

    def sale(self, amount: money.Amount, scheme: str) -> None:
        line = self._line(amount.currency, scheme)
        line.sale_count += 1
        line.sale_minor += amount.minor_units

    def refund(self, amount: money.Amount, scheme: str) -> None:
        line = self._line(amount.currency, scheme)
        line.refund_count += 1
        line.refund_minor += amount.minor_units

    def void(self, currency: str, scheme: str) -> None:
        self._line(currency, scheme).void_count += 1

    def to_proto(self) -> list[terminal_pb2.BatchTotal]:
        return [self.lines[k].to_proto() for k in sorted(self.lines)]

    def clear(self) -> None:
        self.lines.clear()


@dataclass(frozen=True, slots=True)
class Mismatch:
    currency: str
    scheme: str
    field: str
    switch_value: int
    terminal_value: int


@dataclass(frozen=True, slots=True)
class BatchCloseResult:
    batch_number: int
    in_balance: bool
    switch_totals: tuple[BatchLine, ...]
    mismatches: tuple[Mismatch, ...]
    response_code: str
    message: str = ""
    # The switch says this terminal's DUKPT counter is near exhaustion: re-key.
    rekey_required: bool = False

    @classmethod
    def from_proto(cls, resp: terminal_pb2.CloseBatchResponse) -> BatchCloseResult:
        code = resp.response_code
        return cls(
            rekey_required=resp.rekey_required,
            batch_number=resp.batch_number,
            in_balance=resp.in_balance,
            switch_totals=tuple(BatchLine.from_proto(t) for t in resp.switch_totals),
            mismatches=tuple(
                Mismatch(
                    m.currency,
                    _PROTO_TO_SCHEME.get(m.scheme, "unknown"),
                    m.field,
                    m.switch_value,
                    m.terminal_value,
                )
                for m in resp.mismatches
            ),
            response_code=f"{code - 100:02d}" if code >= 100 else "",
            message=resp.message,
        )


def _figure(value: int, name: str, currency: str) -> str:
    if name.endswith("_minor"):
        return f"{money.format_major(value, currency)} {currency}"
    return str(value)


def format_close(result: BatchCloseResult) -> str:
    """The close as a terminal prints it: one line per currency and scheme, amounts with the
    currency's exponent, then the reconciliation and any mismatch."""
    state = "IN BALANCE" if result.in_balance else "OUT OF BALANCE"
    out = [f"BATCH {result.batch_number} CLOSED  {state}"]
    if not result.switch_totals:
        out.append("  (no transactions)")
    for t in result.switch_totals:
        sales = money.format_major(t.sale_minor, t.currency)
        refunds = money.format_major(t.refund_minor, t.currency)
        net = money.format_major(t.sale_minor - t.refund_minor, t.currency)
        out.append(
            f"  {t.currency} {t.scheme:<10} sales {t.sale_count:>3} {sales:>14}  "
            f"refunds {t.refund_count:>3} {refunds:>12}  voids {t.void_count:>3}  "
            f"net {net} {t.currency}"
        )
    for m in result.mismatches:
        out.append(
            f"  MISMATCH {m.currency} {m.scheme} {m.field}: switch "
            f"{_figure(m.switch_value, m.field, m.currency)}, terminal "
            f"{_figure(m.terminal_value, m.field, m.currency)}"
        )
    return "\n".join(out)


def parse_line(text: str) -> BatchLine:
    """``CUR:SCHEME:SALES:SALE_AMOUNT:REFUNDS:REFUND_AMOUNT:VOIDS`` with major-unit amounts
    (``EUR:visa:2:72.50:1:5.00:1``) -> a line in minor units (ValueError when malformed)."""
    parts = text.split(":")
    if len(parts) != 7:
        raise ValueError(f"a totals line is CUR:SCHEME:SALES:AMOUNT:REFUNDS:AMOUNT:VOIDS: {text!r}")
    cur, scheme = parts[0].upper(), parts[1].lower()
    try:
        Scheme(scheme)
    except ValueError:
        raise ValueError(f"unknown card scheme {parts[1]!r}") from None
    counts = []
    for value in (parts[2], parts[4], parts[6]):
        if not value.isdigit():
            raise ValueError(f"a count must be a whole number: {value!r}")
        counts.append(int(value))
    return BatchLine(
        cur,
        scheme,
        counts[0],
        money.parse_major(parts[3], cur),
        counts[1],
        money.parse_major(parts[5], cur),
        counts[2],
    )
