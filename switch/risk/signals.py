"""The signals the rules read, from one request's facts and the store's history before it.

Every count and amount is of the requests *before* this one (the store returns its state,
then adds the request): ``card.count_10m >= 4`` is true for the fifth payment in ten minutes.
Windows have minute resolution: "10m" is the current minute's bucket and the nine before it;
"24h" the current hour's bucket and the 23 before it. Amounts are minor units of the request's
currency. A percentage is an integer (no floats in rules: CEL does not mix int and double).

``template()`` lists every signal with its type; a rule that names anything else, or compares
across types, is refused when the rule set is loaded, not when a payment arrives.
"""

from __future__ import annotations

from typing import Any

from switch.domain.risk import HOUR, MINUTE, Bucket, History, Seen
from switch.risk.facts import Facts

NEVER = -1  # "seconds since" when there was no such time

Signals = dict[str, Any]


_SPANS = (10, 60)  # the minute windows the signals read (``minutes``)


class _Windows:
    """One subject's window sums, in one pass over its buckets: a busy card, terminal or
    merchant has a bucket per minute and metric for the last hour, and the signals read about
    twenty sums of them (a pass per sum was most of the stage's CPU under load)."""

    def __init__(self, buckets: list[Bucket], now: float) -> None:
        minute = int(now) // MINUTE * MINUTE
        firsts = [(n, minute - (n - 1) * MINUTE) for n in _SPANS]
        first_hour = int(now) // HOUR * HOUR - 23 * HOUR
        sums: dict[tuple[int, str], int] = {}
        for b in buckets:
            if b.gran == MINUTE:
                for n, first in firsts:
                    if b.start >= first:
                        key = (n, b.metric)
                        sums[key] = sums.get(key, 0) + b.value
            elif b.gran == HOUR and b.start >= first_hour:
                key = (0, b.metric)
                sums[key] = sums.get(key, 0) + b.value
        self._sums = sums

    def minutes(self, metric: str, n: int) -> int:
        if n not in _SPANS:
            raise ValueError(f"no {n}-minute window (windows: {_SPANS})")
        return self._sums.get((n, metric), 0)

    def day(self, metric: str) -> int:
        return self._sums.get((0, metric), 0)


def _places(seen: list[Seen], kind: str) -> set[str]:
    return {s.value for s in seen if s.kind == kind}


def build(f: Facts, history: History) -> Signals:
    """The signals of request ``f`` given the store's ``history`` before it."""
    card = _Windows(history.buckets.get(f.card, []), f.now)
    term = _Windows(history.buckets.get(f.terminal, []), f.now)
    merch = _Windows(history.buckets.get(f.merchant, []), f.now)
    addr = _Windows(history.buckets.get(f.addr, []), f.now)
    card_seen = history.seen.get(f.card, [])
    term_seen = history.seen.get(f.terminal, [])
    cur = f.currency
    count_cur, amount_cur = card.day("n." + cur), card.day("amt." + cur)
    usual_pct = f.amount * 100 * count_cur // amount_cur if count_cur and amount_cur else 0
    elsewhere = [
        s.at for s in card_seen if s.kind == "country" and f.country and s.value != f.country
    ]
    cards = _places(term_seen, "card")
    cards.add(f.card_token)
    addresses = _places(term_seen, "addr")
    return {
        "amount": f.amount,
        "currency": cur,
        "small": f.small,
        "mcc": f.mcc,
        "country": f.country,
        "hour": f.local_hour,
        "entry_mode": f.entry_mode,
        "has_pin": f.has_pin,
        "card": {
            "count_10m": card.minutes("n", 10),
            "count_1h": card.minutes("n", 60),
            "count_24h": card.day("n"),
            "amount_1h": card.minutes("amt." + cur, 60),
            "amount_24h": amount_cur,
            "amount_pct": usual_pct,
            "small_1h": card.minutes("small", 60),
            "declines_1h": card.minutes("decl", 60),
            "declines_24h": card.day("decl"),
            "badpin_24h": card.day("badpin"),
            "new_terminal": f.terminal_id not in _places(card_seen, "terminal"),
            "new_merchant": f.merchant_id not in _places(card_seen, "merchant"),
            "countries_24h": len(_places(card_seen, "country") | ({f.country} - {""})),
            "other_country_s": int(f.now - max(elsewhere)) if elsewhere else NEVER,
        },
        "terminal": {
            "count_10m": term.minutes("n", 10),
            "count_1h": term.minutes("n", 60),
            "cards_1h": len(cards),
            "small_10m": term.minutes("small", 10),
            "declines_10m": term.minutes("decl", 10),
            "badpin_1h": term.minutes("badpin", 60),
            "seen_before": bool(addresses) or term.day("n") > 0,
            "addr_new": bool(f.address) and f.address not in addresses,
        },
        "merchant": {
            "count_10m": merch.minutes("n", 10),
            "count_1h": merch.minutes("n", 60),
            "declines_1h": merch.minutes("decl", 60),
        },
        "address": {
            "count_10m": addr.minutes("n", 10),
            "count_1h": addr.minutes("n", 60),
        },
    }


def template() -> Signals:
    """Every signal with a value of its type: what a rule set is checked against on load."""
    f = Facts(
        card_token="0" * 64,
        bin="400000",
        terminal_id="T",
        merchant_id="M",
        address="127.0.0.1",
        amount=1,
        currency="EUR",
        mcc="5999",
        country="DE",
        entry_mode=0,
        has_pin=False,
        local_hour=12,
        now=0.0,
        small=False,
    )
    return build(f, History())
