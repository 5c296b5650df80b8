"""Batch totals per (currency, card scheme) and their comparison with a terminal's own.

Lines are keyed by (currency, scheme), so two currencies are never added together; amounts
are integer minor units. The comparison is ISO 8583 0500/0510 reconciliation: every figure of
every line on either side is compared, and each difference is reported as a mismatch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

from payswitch.cards import Scheme
from switch.domain.batches import BatchItem, ItemKind

FIGURES = ("sale_count", "sale_minor", "refund_count", "refund_minor", "void_count")


@dataclass(slots=True)
class Line:
    currency: str
    scheme: str  # payswitch.cards.Scheme value, e.g. "visa"
    sale_count: int = 0
    sale_minor: int = 0
    refund_count: int = 0
    refund_minor: int = 0
    void_count: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.currency, self.scheme)


@dataclass(frozen=True, slots=True)
class Mismatch:
    currency: str
    scheme: str
    field: str
    switch_value: int
    terminal_value: int


def totals_of(items: Iterable[BatchItem]) -> list[Line]:
    """The batch's lines, sorted by currency then scheme."""
    lines: dict[tuple[str, str], Line] = {}
    for item in items:
        scheme = Scheme(item.scheme.lower()).value
        line = lines.setdefault((item.currency, scheme), Line(item.currency, scheme))
        if item.kind is ItemKind.SALE:
            line.sale_count += 1
            line.sale_minor += item.amount_minor
        elif item.kind is ItemKind.REFUND:
            line.refund_count += 1
            line.refund_minor += item.amount_minor
        else:
            line.void_count += 1
    return [lines[k] for k in sorted(lines)]


def compare(switch: Iterable[Line], terminal: Iterable[Line]) -> list[Mismatch]:
    """Every figure that differs; a line missing on one side counts as all zeros there."""
    ours = {line.key: line for line in switch}
    theirs = {line.key: line for line in terminal}
    out = []
    for key in sorted(set(ours) | set(theirs)):
        a = ours.get(key, Line(*key))
        b = theirs.get(key, Line(*key))
        for name in FIGURES:
            if getattr(a, name) != getattr(b, name):
                out.append(Mismatch(key[0], key[1], name, getattr(a, name), getattr(b, name)))
    return out


assert {f.name for f in fields(Line)} >= set(FIGURES)
