"""Which cards and amounts the demo shift uses, derived from the topology file.

Deriving rather than hard-coding keeps ``make demo`` honest when the topology changes: each
case is chosen by the rule that produces its answer at the issuer.

- approvals: per scheme the merchant accepts, the active, unexpired card with the most funds,
  for a small amount in its account's currency;
- 51: the active card with the least funds, for five major units more than it has;
- 54: an active card whose expiry has passed;
- 05: a blocked card and a lost card;
- 61: an active card with a per-transaction limit, one major unit above it;
- 14: a Luhn-valid PAN inside an issuer's BIN range that no issuer has on file;
- PIN: the best-funded usable card that has a PIN on file (its right PIN, then a wrong one: 55).
- foreign card (issue 16): the best-funded usable card whose account is in another currency
  than the home card's, paying 15 major units of the home currency: the scheme converts, the
  answer shows the billing amount and rate;
- batch: per currency the merchant can take, the best-funded usable card in it, for 20 major
  units (sold, captured, and in the home currency also refunded and voided) before the close.

The CVV2 and chip steps use the home card; their values come from the card simulator at run
time (a CVV2 is printed on the card, an ARQC made by its chip), never from the topology.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from payswitch import cards, money
from payswitch.world.topology import AccountConfig, CardConfig, Topology


class PlanError(ValueError):
    """The topology lacks what the demo needs (a terminal, any usable card)."""


@dataclass(frozen=True, slots=True)
class CardCase:
    """One authorization of the shift and the ISO code it must produce."""

    label: str
    pan: str
    expiry: str  # YYMM, as on the wire
    amount: money.Amount
    expect: str
    pin: str | None = field(default=None, repr=False)  # the cardholder's PIN, when on file

    def __repr__(self) -> str:  # never the PAN, not even in a debugger or traceback
        return f"CardCase({self.label!r}, {cards.mask_pan(self.pan)}, {self.amount.format()})"


@dataclass(frozen=True, slots=True)
class Plan:
    switch: str
    terminal_id: str
    merchant_id: str
    approvals: tuple[CardCase, ...]
    declines: tuple[CardCase, ...]
    # A well-funded card for capture, void, refund, CVV2, chip and the idempotency steps.
    home: CardCase
    # A card with a PIN on file (None when the topology gives no card a PIN).
    pin_card: CardCase | None = None
    # One card per currency for the batch close (home currency first), and the merchant's MCC.
    batch_cases: tuple[CardCase, ...] = ()
    mcc: str = ""
    # A card billed in another currency, paying in the home one (None when there is none).
    foreign: CardCase | None = None


def _major(units: int, currency: str) -> money.Amount:
    return money.Amount(units * 10 ** money.exponent(currency), currency)


def _luhn_complete(body: str) -> str:
    return next(body + d for d in "0123456789" if cards.luhn_valid(body + d))


def _future_expiry(today: dt.date) -> str:
    return f"{(today.year + 3) % 100:02d}12"


class _World:
    """The topology seen from one merchant: its cards, their accounts and schemes."""

    def __init__(self, topo: Topology, merchant_id: str, today: dt.date) -> None:
        merchant = topo.merchant(merchant_id)
        self.schemes = {s for a in merchant.acquirers for s in topo.acquirer(a).schemes}
        self.now_yymm = today.strftime("%y%m")
        self.accounts: dict[str, AccountConfig] = {}
        self.cards: list[CardConfig] = []
        for issuer in topo.issuers:
            self.accounts.update((a.id, a) for a in issuer.accounts)
            self.cards.extend(c for c in issuer.cards if self.accepted(c.pan))
        self.on_file = {c.pan for i in topo.issuers for c in i.cards}
        self.topo = topo

    def accepted(self, pan: str) -> bool:
        return cards.scheme_of(pan) in self.schemes

    def expired(self, card: CardConfig) -> bool:
        return card.expiry < self.now_yymm

    def usable(self, card: CardConfig) -> bool:
        return card.status == "active" and not self.expired(card)

    def funds(self, card: CardConfig) -> int:
        account = self.accounts[card.account]
        return account.balance + account.credit_limit

    def currency(self, card: CardConfig) -> str:
        return self.accounts[card.account].currency

    def case(self, label: str, card: CardConfig, amount: money.Amount, expect: str) -> CardCase:
        return CardCase(label, card.pan, card.expiry, amount, expect, card.pin)

    def unknown_pan(self) -> str | None:
        """A Luhn-valid PAN routed to an issuer (longest BIN match) but not on its file."""
        for issuer in self.topo.issuers:
            for rng in issuer.bins:
                for length in (16, 15):
                    tail = length - 1 - len(rng.low)
                    for n in range(1, 200) if tail > 3 else ():
                        pan = _luhn_complete(rng.low + str(n).rjust(tail, "9"))
                        if (
                            pan not in self.on_file
                            and self.accepted(pan)
                            and self.topo.issuer_for_pan(pan) is issuer
                        ):
                            return pan
        return None


def build_plan(
    topo: Topology,
    *,
    terminal_id: str | None = None,
    switch: str | None = None,
    today: dt.date | None = None,
) -> Plan:
    today = today or dt.date.today()
    if not topo.terminals:
        raise PlanError("the topology has no terminals")
    terminal = next((t for t in topo.terminals if t.id == terminal_id), None)
    if terminal is None:
        if terminal_id is not None:
            raise PlanError(f"no terminal {terminal_id!r} in the topology")
        terminal = topo.terminals[0]
    w = _World(topo, terminal.merchant, today)
    usable = [c for c in w.cards if w.usable(c) and c.per_txn_limit is None]
    if not usable:
        raise PlanError(f"merchant {terminal.merchant} accepts no usable card in the topology")

    declines: list[CardCase] = []
    poorest = min(usable, key=w.funds)
    cur = w.currency(poorest)
    over = money.Amount(w.funds(poorest), cur) + _major(5, cur)
    declines.append(w.case("insufficient funds", poorest, over, "51"))
    for c in w.cards:
        if c.status == "active" and w.expired(c):
            declines.append(w.case("expired card", c, _major(10, w.currency(c)), "54"))
            break
    for status in ("blocked", "lost"):
        found = next((c for c in w.cards if c.status == status), None)
        if found is not None:
            declines.append(w.case(f"card {status}", found, _major(10, w.currency(found)), "05"))
    for c in w.cards:
        limit = c.per_txn_limit
        if limit is not None and w.usable(c):
            amount = money.Amount(limit, w.currency(c)) + _major(1, w.currency(c))
            if amount.minor_units <= w.funds(c):
                declines.append(w.case("over per-txn limit", c, amount, "61"))
                break
    pan = w.unknown_pan()
    if pan is not None:
        currency = w.currency(usable[0])
        unknown = CardCase(
            "card not on file", pan, _future_expiry(today), _major(10, currency), "14"
        )
        declines.append(unknown)

    approvals: list[CardCase] = []
    for n, scheme in enumerate(s for s in cards.Scheme if s in w.schemes):
        candidates = [
            c for c in usable if cards.scheme_of(c.pan) is scheme and c.pan != poorest.pan
        ]
        if not candidates:
            continue
        best = max(candidates, key=w.funds)
        amount = _major(10 + n, w.currency(best))
        if amount.minor_units <= w.funds(best):
            approvals.append(w.case(f"approve {scheme.value}", best, amount, "00"))
    if not approvals:
        raise PlanError("no card in the topology can be approved")
    richest = max(usable, key=w.funds)
    home = w.case("home card", richest, _major(40, w.currency(richest)), "00")
    with_pin = [
        c
        for c in usable
        if c.pin is not None and w.funds(c) >= _major(12, w.currency(c)).minor_units
    ]
    pin_card = None
    if with_pin:
        best = max(with_pin, key=w.funds)
        pin_card = w.case("PIN approval", best, _major(12, w.currency(best)), "00")
    batch_cases = [replace(home, label=f"batch sale {home.amount.currency}")]
    amount_of = {c.pan: _major(20, w.currency(c)) for c in usable}
    for cur in sorted({w.currency(c) for c in usable} - {home.amount.currency}):
        fits = [
            c for c in usable if w.currency(c) == cur and amount_of[c.pan].minor_units <= w.funds(c)
        ]
        if fits:
            best = max(fits, key=w.funds)
            batch_cases.append(w.case(f"batch sale {cur}", best, amount_of[best.pan], "00"))
    home_cur = home.amount.currency
    abroad = [
        c
        for c in usable
        if w.currency(c) != home_cur and c.pan != poorest.pan and c.pan != richest.pan
    ]
    foreign = None
    if abroad:
        best = max(abroad, key=w.funds)
        foreign = w.case(f"foreign card ({w.currency(best)})", best, _major(15, home_cur), "00")
    return Plan(
        foreign=foreign,
        batch_cases=tuple(batch_cases),
        mcc=topo.merchant(terminal.merchant).mcc,
        switch=switch or topo.switch.listen,
        terminal_id=terminal.id,
        merchant_id=terminal.merchant,
        approvals=tuple(approvals),
        declines=tuple(declines),
        home=home,
        pin_card=pin_card,
    )
