"""Known terminals and their merchants, from the topology file.

Issue 5 adds mTLS identities and revocation; today a terminal is accepted when it is listed
and the merchant id it sends is its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from network.topology import MerchantConfig, Topology
from switch.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class TerminalIdentity:
    terminal_id: str
    merchant: MerchantConfig


class TerminalRegistry:
    def __init__(self, topology: Topology) -> None:
        merchants = {m.id: m for m in topology.merchants}
        self._terminals = {
            t.id: TerminalIdentity(t.id, merchants[t.merchant]) for t in topology.terminals
        }

    def authenticate(self, terminal_id: str, merchant_id: str | None = None) -> TerminalIdentity:
        """The terminal's identity; InvalidArgument naming the field when unknown or mismatched."""
        ident = self._terminals.get(terminal_id)
        if ident is None:
            raise InvalidArgument("terminal_id", "unknown terminal")
        if merchant_id is not None and merchant_id != ident.merchant.id:
            raise InvalidArgument("merchant_id", "does not match the terminal's merchant")
        return ident
