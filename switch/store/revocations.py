"""Terminal revocations in the state store: the part of the Store API every backend shares.

A revoked terminal is refused by every switch process on the store (each re-reads the list on
a short period, ``switch.registry``). Revocations are few (an operator action per lost or
stolen terminal), so the whole list is read at once: one small read per refresh, none per
request. Revoking again replaces the reason and time; reinstating deletes the record.
"""

from __future__ import annotations

from switch.domain.revocations import Revocation


class Revocations:
    """Mixed into ``Store``; not abstract so that a backend without it still loads (the
    registry then fails closed: see ``switch.registry``)."""

    async def revoke_terminal(self, terminal_id: str, reason: str, now: float) -> Revocation:
        """Record ``terminal_id`` as revoked (replaces an earlier record); durable on return."""
        raise NotImplementedError(f"{type(self).__name__} has no terminal revocations")

    async def reinstate_terminal(self, terminal_id: str) -> bool:
        """Delete the terminal's revocation; True when there was one."""
        raise NotImplementedError(f"{type(self).__name__} has no terminal revocations")

    async def revoked_terminals(self) -> list[Revocation]:
        """Every revocation, by terminal id."""
        raise NotImplementedError(f"{type(self).__name__} has no terminal revocations")
