"""Dynamic currency conversion (issue 16): the switch's offer to pay in the card's currency.

Why in the switch: DCC is the merchant's service, offered at the terminal before the sale; the
network then authorizes and clears the sale in the cardholder's currency (no scheme
conversion). The offer comes from the card's scheme rate table in force today plus the
topology's disclosed markup (``[fx] dcc_markup_bps``), as ``payswitch.fx.dcc_offer`` computes
it. The card's currency is known from its BIN: the simulated world's BIN table is the
topology's cards, a BIN (first six digits) being eligible only when every card under it bills
the same currency through the same scheme (ambiguous BINs get no offer, as a DCC provider's
table would list none).

The terminal's choice travels in the MAC'd AuthorizeRequest (``dcc_currency``, ``dcc_rate``);
``check`` re-quotes once the switch has decrypted the card, and refuses a choice that no longer
matches (another currency, another rate): the cardholder must be shown the current offer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from payswitch import fx
from payswitch.cards import scheme_of
from payswitch.world.topology import Topology


class DccRefused(ValueError):
    """A DCC choice that does not match the current offer; ``field`` names the request field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class DccDesk:
    markup_bps: int
    card_currency: dict[str, tuple[str, str]] = field(default_factory=dict)  # BIN -> (cur, brand)
    rates: dict[str, tuple[fx.RateTable, ...]] = field(default_factory=dict)  # brand -> tables

    @classmethod
    def from_topology(cls, topology: Topology) -> DccDesk:
        seen: dict[str, set[tuple[str, str]]] = {}
        for issuer in topology.issuers:
            accounts = {a.id: a.currency for a in issuer.accounts}
            for card in issuer.cards:
                brand = scheme_of(card.pan)
                if brand is not None and card.account in accounts:
                    seen.setdefault(card.pan[:6], set()).add((accounts[card.account], brand.value))
        bins = {b: next(iter(v)) for b, v in seen.items() if len(v) == 1}
        rates = {brand.value: s.rates for s in topology.schemes for brand in s.brands}
        return cls(topology.dcc_markup_bps, bins, rates)

    def offer(self, card_bin: str, amount_minor: int, currency: str) -> fx.DccOffer | None:
        """The offer for a card of ``card_bin`` (its first six digits), or None (not eligible)."""
        if self.markup_bps <= 0:
            return None
        known = self.card_currency.get(card_bin[:6])
        if known is None or known[0] == currency:
            return None
        table = fx.table_for(self.rates.get(known[1], ()), datetime.now(UTC).date())
        if table is None:
            return None
        try:
            return fx.dcc_offer(table, amount_minor, currency, known[0], self.markup_bps)
        except fx.FxError:
            return None  # the table does not quote the pair: no offer

    def check(
        self, pan: str, amount_minor: int, currency: str, chosen: str, rate: str
    ) -> fx.DccOffer:
        """The offer the cardholder accepted, re-quoted for the decrypted card; DccRefused when
        it no longer matches what they were shown."""
        offer = self.offer(pan[:6], amount_minor, currency)
        if offer is None or offer.billing_currency != chosen:
            raise DccRefused("dcc_currency", "no DCC offer in this currency for this card")
        if offer.rate != Decimal(rate):
            raise DccRefused("dcc_rate", "the DCC rate is no longer offered: quote again")
        return offer
