"""Routing: which acquirers may carry a card of a given scheme for a given merchant.

The BIN table (payswitch.cards.IIN_TABLE) names the scheme; the merchant's acquirers, in its
order of preference, are filtered to those that serve that scheme. Issue 5 adds circuit
breakers and failover along this list; today the first eligible acquirer is used.
"""

from __future__ import annotations

from network.topology import MerchantConfig, Topology
from payswitch.cards import Scheme


class Router:
    def __init__(self, topology: Topology) -> None:
        self._serves = {a.id: frozenset(a.schemes) for a in topology.acquirers}

    def acquirers_for(self, merchant: MerchantConfig, scheme: Scheme) -> list[str]:
        """Eligible acquirer ids in the merchant's order of preference (may be empty)."""
        return [a for a in merchant.acquirers if scheme in self._serves.get(a, ())]
