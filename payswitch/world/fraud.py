"""Labelled traffic of the simulated world: honest payments with fraud patterns mixed in.

Each pattern is a function of the cards and terminals it uses, so the end-to-end tests drive
it through a real stack with the topology's cards, and ``day`` builds a whole seeded day of
synthetic cards and terminals for backtests (``payswitch-risk backtest``). Labels are the
pattern's name ("" for honest payments). The patterns:

- ``card_testing``: a bot tries stolen card numbers with small amounts at one terminal, a few
  seconds apart; most are declined by their issuers (wrong expiry, CVV);
- ``stolen_card``: a stolen card spent fast at several new merchants, large amounts;
- ``cloned_card``: the cardholder pays at home, a clone of the card abroad soon after;
- ``account_takeover``: after the cardholder's usual day, payments far above the usual amount
  at a terminal the card never used, without a PIN.

Amounts are minor units (EUR). Times are seconds from the day's start (UTC).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

HONEST = ""


@dataclass(frozen=True, slots=True)
class Payment:
    at: float
    card: str  # a PAN (end-to-end tests) or a synthetic card token (backtests)
    terminal: str
    amount: int
    label: str = HONEST
    has_pin: bool = True
    issuer_code: str = "00"  # what the issuer answers if the switch lets it through
    currency: str = "EUR"


@dataclass(frozen=True, slots=True)
class Place:
    terminal: str
    merchant: str
    country: str
    mcc: str


def card_testing(
    card: str,
    terminal: str,
    start: float,
    attempts: int = 6,
    gap_s: float = 15.0,
    rng: random.Random | None = None,
) -> list[Payment]:
    """``attempts`` small amounts (0.50-1.99) on one card at one terminal, ``gap_s`` apart."""
    r = rng or random.Random(0)
    return [
        Payment(start + i * gap_s, card, terminal, r.randint(50, 199), "card_testing", False)
        for i in range(attempts)
    ]


def cloned_card(
    card: str, terminals: tuple[str, str], start: float, clone_payments: int = 3
) -> list[Payment]:
    """The cardholder at ``terminals[0]`` (honest), the clone at ``terminals[1]`` (another
    country) from 20 minutes later."""
    home, away = terminals
    out = [Payment(start, card, home, 4200)]
    out += [
        Payment(start + 1200 + 600 * i, card, away, 8900 + 1000 * i, "cloned_card", False)
        for i in range(clone_payments)
    ]
    return out


def stolen_card(
    card: str, terminals: list[str], start: float, rng: random.Random | None = None
) -> list[Payment]:
    """One payment at each of ``terminals`` (new merchants), 3-8 minutes apart, 250-900 EUR."""
    r = rng or random.Random(0)
    out, at = [], start
    for t in terminals:
        out.append(Payment(at, card, t, r.randint(25_000, 90_000), "stolen_card", False))
        at += r.uniform(180, 480)
    return out


def account_takeover(
    card: str, terminal: str, start: float, usual: int, payments: int = 4
) -> list[Payment]:
    """``payments`` of 8-12 times the card's ``usual`` amount at a new terminal, no PIN."""
    return [
        Payment(start + 300 * i, card, terminal, usual * (8 + i), "account_takeover", False)
        for i in range(payments)
    ]


# --- a whole day ------------------------------------------------------------------------------

COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "BE")
MCCS = ("5411", "5411", "5541", "5812", "5311", "5912", "5999", "4121", "7995")


@dataclass(frozen=True, slots=True)
class Day:
    payments: list[Payment]  # in time order
    places: dict[str, Place]  # by terminal id

    @property
    def fraud(self) -> int:
        return sum(1 for p in self.payments if p.label)


def _token(n: int) -> str:
    return f"{n:064x}"


def day(seed: int = 14, payments: int = 10_000, cards: int = 2500, terminals: int = 300) -> Day:
    """A seeded day: honest cardholders paying near home at their usual amounts (07:00-22:00),
    with the four patterns mixed in (about 3-4 % of the payments)."""
    r = random.Random(seed)
    places = {}
    for i in range(terminals):
        tid = f"T-{i:05d}"
        places[tid] = Place(tid, f"M-{i // 2:05d}", COUNTRIES[i % len(COUNTRIES)], r.choice(MCCS))
    by_country: dict[str, list[str]] = {c: [] for c in COUNTRIES}
    for tid, place in places.items():
        by_country[place.country].append(tid)
    homes = [COUNTRIES[i % len(COUNTRIES)] for i in range(cards)]
    usual = [int(math.exp(r.gauss(math.log(3500), 0.6))) for _ in range(cards)]
    haunts = [r.sample(by_country[homes[c]], 4) for c in range(cards)]
    out: list[Payment] = []
    honest = int(payments * 0.965)
    for _ in range(honest):
        c = r.randrange(cards)
        t = r.choice(haunts[c]) if r.random() < 0.8 else r.choice(by_country[homes[c]])
        amount = max(50, int(usual[c] * math.exp(r.gauss(0, 0.35))))
        code = "00" if r.random() > 0.02 else r.choice(("51", "05", "55"))
        at = r.uniform(7 * 3600, 22 * 3600)
        out.append(Payment(at, _token(c), t, amount, HONEST, r.random() < 0.85, code))
    next_card = cards
    while sum(1 for p in out if p.label) < payments - honest:
        kind = r.choice(("card_testing", "stolen_card", "cloned_card", "account_takeover"))
        at = r.uniform(8 * 3600, 20 * 3600)
        if kind == "card_testing":
            bot = r.choice(list(places))
            for k in range(r.randint(3, 6)):  # a few stolen numbers, tried in turn
                tries = card_testing(_token(next_card), bot, at + k * 200, r.randint(6, 10), 12, r)
                out += [replace(p, issuer_code=r.choice(("05", "14", "54", "00"))) for p in tries]
                next_card += 1
        elif kind == "stolen_card":
            c = r.randrange(cards)
            shops = r.sample(by_country[homes[c]], 8)
            out += stolen_card(_token(c), shops, at, r)
        elif kind == "cloned_card":
            c = r.randrange(cards)
            away = r.choice([k for k in COUNTRIES if k != homes[c]])
            pair = (r.choice(haunts[c]), r.choice(by_country[away]))
            out += cloned_card(_token(c), pair, at)
        else:
            c = r.randrange(cards)
            history = [
                Payment(at - 3600 * (k + 1), _token(c), r.choice(haunts[c]), usual[c])
                for k in range(3)
            ]
            new = r.choice([t for t in by_country[homes[c]] if t not in haunts[c]])
            out += history + account_takeover(_token(c), new, at, usual[c])
    out.sort(key=lambda p: p.at)
    return Day(out, places)
