"""What many switch processes on one store coordinate with: leases and sequences."""

from __future__ import annotations

import abc


class CoordinationStore(abc.ABC):
    """Leases (work one process does at a time) and shared counters (RRNs, STANs)."""

    # --- leases ----------------------------------------------------------------------
    @abc.abstractmethod
    async def acquire_lease(self, name: str, owner: str, ttl_s: float, now: float) -> bool:
        """Take, or renew, the lease ``name`` for ``owner`` until ``now + ttl_s``; True while
        ``owner`` holds it. A lease another owner holds is free again once it expires.

        Work that must run in one switch process at a time among many on one store (the
        recovery scan today; store-and-forward workers and batch cut-off later) runs only
        while its lease is held, renewed well inside its TTL."""

    # --- sequences --------------------------------------------------------------------
    @abc.abstractmethod
    async def next_sequence(self, name: str) -> int:
        """A strictly increasing counter shared by every switch process on this store
        (RRN and network STAN numbering), durable across restarts; the first value is 1."""
