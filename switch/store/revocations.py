"""Terminal revocations in the state store.

A revoked terminal is refused by every switch process on the store (each re-reads the list on
a short period, ``switch.core.registry``). Revocations are few (an operator action per lost or
stolen terminal), so the whole list is read at once: one small read per refresh, none per
request. Revoking again replaces the reason and time; reinstating deletes the record.
"""

from __future__ import annotations

import abc

from switch.domain.revocations import Revocation


class RevocationStore(abc.ABC):
    """Revoked terminals: a short list, read whole by every switch on a short period."""

    @abc.abstractmethod
    async def revoke_terminal(self, terminal_id: str, reason: str, now: float) -> Revocation:
        """Record ``terminal_id`` as revoked (replaces an earlier record); durable on return."""

    @abc.abstractmethod
    async def reinstate_terminal(self, terminal_id: str) -> bool:
        """Delete the terminal's revocation; True when there was one."""

    @abc.abstractmethod
    async def revoked_terminals(self) -> list[Revocation]:
        """Every revocation, by terminal id."""
