"""Routing: which acquirers may carry a card of a given scheme for a given merchant.

The BIN table (payswitch.cards.IIN_TABLE) names the scheme; the merchant's acquirers, in its
order of preference, are filtered to those that serve that scheme. With circuit breakers
(``switch.routing.breakers``), ``candidates`` puts the acquirers whose circuit would admit a request
first (keeping the merchant's order within each group): the first candidate is the one the
PIN block is translated for and the intent names, and the forward stage fails over along the
rest (``switch.pipeline.stages.Route`` and ``Forward``).
"""

from __future__ import annotations

from payswitch.cards import Scheme
from payswitch.world.topology import MerchantConfig, Topology
from switch.routing.breakers import Breakers


class Router:
    def __init__(self, topology: Topology, breakers: Breakers | None = None) -> None:
        self._serves = {a.id: frozenset(a.schemes) for a in topology.acquirers}
        self._breakers = breakers
        self._eligible: dict[str, dict[Scheme, tuple[str, ...]]] = {}

    def acquirers_for(self, merchant: MerchantConfig, scheme: Scheme) -> list[str]:
        """Eligible acquirer ids in the merchant's order of preference (may be empty)."""
        return [a for a in merchant.acquirers if scheme in self._serves.get(a, ())]

    def candidates(self, merchant: MerchantConfig, scheme: Scheme) -> list[str]:
        """Eligible acquirers, those whose circuit admits a request now first."""
        eligible = self.acquirers_for(merchant, scheme)
        if self._breakers is None:
            return eligible
        up = [a for a in eligible if self._breakers.available(a)]
        return up + [a for a in eligible if a not in up]

    def routes(self, merchant: MerchantConfig) -> dict[Scheme, tuple[str, ...]]:
        """``candidates`` for every scheme the merchant's acquirers serve: the table the card's
        scheme is looked up in once the card is open (a scheme not in it has no route). On
        the hot path: the eligible acquirers per scheme are worked out once per merchant, and
        each acquirer's circuit is asked once per call."""
        eligible = self._eligible.get(merchant.id)
        if eligible is None:
            schemes = {s for a in merchant.acquirers for s in self._serves.get(a, ())}
            eligible = {s: tuple(self.acquirers_for(merchant, s)) for s in schemes}
            self._eligible[merchant.id] = eligible
        if self._breakers is None:
            return dict(eligible)
        up = {a for a in merchant.acquirers if self._breakers.available(a)}
        return {
            s: tuple(a for a in ids if a in up) + tuple(a for a in ids if a not in up)
            for s, ids in eligible.items()
        }
