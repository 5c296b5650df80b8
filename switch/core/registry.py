"""Known terminals and their merchants (from the topology), their mTLS identities, and the
revocations an operator made (from the state store, cached here).

Who may send what (``admit``, once per request, through ``switch.core.admission``):

- a malformed or unlisted ``terminal_id`` in the request is bad input: INVALID_ARGUMENT
  naming ``terminal_id``, as in plaintext mode;
- with mTLS, the client certificate's terminal id (``payswitch.tls``) must be the request's:
  otherwise PERMISSION_DENIED. A certificate of our CA without a terminal identity (the probe
  certificate), or naming a terminal the topology does not list, gets PERMISSION_DENIED too:
  it authenticated, it is just not a terminal allowed here;
- a revoked terminal gets UNAUTHENTICATED ("terminal revoked"): its credentials no longer
  count. This holds in plaintext mode too.

Revocations live in the store so that every switch process on it honours them. The hot path
reads only the in-memory copy; a background task re-reads the list every
``registry_refresh_s`` (1 s by default), and a revocation made through this process's admin
API applies here at once. Bound: another switch process refuses a revoked terminal at most
``refresh_s`` plus one store read after the revocation was acknowledged (requests already
running finish). Fail closed: when the list could not be read for ``stale_after_s`` (10
refresh periods), every terminal is refused UNAVAILABLE until a read succeeds again, since a
revocation made meanwhile could be missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from payswitch.logs import get as get_logger
from payswitch.world.topology import MerchantConfig, Topology
from switch.domain.errors import StoreError
from switch.domain.revocations import Revocation
from switch.store.base import Store
from switch.wire.errors import ApiError, InvalidArgument, Unauthenticated, Unavailable

_log = get_logger("switch.core.registry")


class PermissionDenied(ApiError):
    code = grpc.StatusCode.PERMISSION_DENIED


@dataclass(frozen=True, slots=True)
class TerminalIdentity:
    terminal_id: str
    merchant: MerchantConfig

    def check_merchant(self, merchant_id: str) -> None:
        """A request's merchant must be the terminal's own: INVALID_ARGUMENT otherwise."""
        if merchant_id != self.merchant.id:
            raise InvalidArgument("merchant_id", "does not match the terminal's merchant")


@dataclass(frozen=True, slots=True)
class TerminalStatus:
    """A listed terminal and its revocation, if any (the admin API's view)."""

    identity: TerminalIdentity
    revocation: Revocation | None


class TerminalRegistry:
    def __init__(
        self,
        topology: Topology,
        store: Store | None = None,
        *,
        refresh_s: float | None = None,
        stale_after_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        merchants = {m.id: m for m in topology.merchants}
        self._terminals = {
            t.id: TerminalIdentity(t.id, merchants[t.merchant]) for t in topology.terminals
        }
        self._store = store
        self.refresh_s = refresh_s if refresh_s is not None else topology.switch.registry_refresh_s
        self.stale_after_s = stale_after_s if stale_after_s is not None else 10 * self.refresh_s
        self._clock = clock
        self._revoked: dict[str, Revocation] = {}
        self._loaded_at: float | None = None
        self._changes = 0  # local revokes/reinstates: a refresh read before one is outdated
        self._task: asyncio.Task[None] | None = None

    # -- the hot path ----------------------------------------------------------------------

    def admit(self, terminal_id: str, peer: str | None, tls: bool) -> TerminalIdentity:
        """May a request naming ``terminal_id`` come from ``peer`` (the certificate's terminal
        id; None without one)? The terminal's identity, or the ApiError to answer with
        (module docstring): InvalidArgument naming ``terminal_id`` when unknown,
        PermissionDenied for another certificate, Unauthenticated when revoked, Unavailable
        when the revocations are stale."""
        ident = self._terminals.get(terminal_id)
        if ident is None:
            raise InvalidArgument("terminal_id", "unknown terminal")
        if tls:
            if peer is None or peer not in self._terminals:
                raise PermissionDenied("client certificate names no terminal of this switch")
            if peer != terminal_id:
                raise PermissionDenied("terminal_id does not match the client certificate")
        self._check_revoked(terminal_id)
        return ident

    def identity(self, terminal_id: str) -> TerminalIdentity:
        """The identity of a terminal admitted already (this request passed ``admit``)."""
        ident = self._terminals.get(terminal_id)
        if ident is None:
            raise InvalidArgument("terminal_id", "unknown terminal")
        return ident

    def _check_revoked(self, terminal_id: str) -> None:
        if self._store is not None:
            loaded = self._loaded_at
            if loaded is None or self._clock() - loaded > self.stale_after_s:
                raise Unavailable("terminal registry unavailable; retry later")
        if terminal_id in self._revoked:
            raise Unauthenticated("terminal revoked")

    # -- the cache -------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Re-read the revocations from the store (StoreError when it cannot be read)."""
        if self._store is None:
            return
        started, changes = self._clock(), self._changes
        revoked = await self._store.revoked_terminals()
        if changes != self._changes:
            return  # an operator changed the list meanwhile: the next refresh reads it
        self._revoked = {r.terminal_id: r for r in revoked}
        self._loaded_at = started  # the list is at least as new as the moment we asked

    def start(self) -> None:
        """Keep the cache fresh in the background (after a first ``refresh``)."""
        if self._store is not None and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="registry-refresh")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except (StoreError, NotImplementedError) as exc:
                _log.error("registry_refresh_failed", error=type(exc).__name__)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- operators -------------------------------------------------------------------------

    def known(self, terminal_id: str) -> bool:
        return terminal_id in self._terminals

    def terminals(self) -> list[TerminalStatus]:
        return [TerminalStatus(i, self._revoked.get(t)) for t, i in sorted(self._terminals.items())]

    def _require_store(self) -> Store:
        if self._store is None:
            raise Unavailable("no state store for revocations")
        return self._store

    async def revoke(self, terminal_id: str, reason: str) -> Revocation:
        """Persist the revocation, then apply it here at once."""
        if terminal_id not in self._terminals:
            raise InvalidArgument("terminal_id", "unknown terminal")
        rev = await self._require_store().revoke_terminal(terminal_id, reason, time.time())
        self._revoked[terminal_id] = rev
        self._changes += 1
        return rev

    async def reinstate(self, terminal_id: str) -> bool:
        if terminal_id not in self._terminals:
            raise InvalidArgument("terminal_id", "unknown terminal")
        existed = await self._require_store().reinstate_terminal(terminal_id)
        self._revoked.pop(terminal_id, None)
        self._changes += 1
        return existed
