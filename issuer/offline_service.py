"""``IssuerOfflineService``: the issuer's side of offline payments.

- ``IssueOfflineAllowance``: validate the grant, hold its cumulative cap on the account
  (``issuer.offline_books``), sign the allowance with the issuer's current offline key in its
  HSM (``hsm.offline``: ECDSA P-256, the private key never leaves). A renewal names the
  allowance it replaces: what is left of that hold is released and reported as ``returned``.
  Allowances are short-lived (``ttl_s``): a spending key an attacker extracts expires soon.
- ``GetOfflineKeys``: every version's public key (the switch publishes the current and
  previous to terminals) and the versions revoked.
- ``PostOfflineSpend``: a settled spend, posted once by its key: from the hold, the excess
  charged to the account. With the issuer's main books attached (``ledger_books``: the node
  does) it is also held there, as a stand-in advice is, under the RRN derived from the spend
  (``payswitch.offline.sale_ids``): the switch records the spend as a captured sale and the
  cut-off's presentment posts it against that hold, so offline spends clear, settle and
  reconcile as online sales do.

HSM calls go through the issuer's ``HsmPool``; the books' SQLite calls to one worker thread.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from hsm import offline as hsm_offline
from issuer.bookkeeper import Bookkeeper
from issuer.books import APPROVED
from issuer.offline_books import OfflineBooks, OfflineBooksError
from payswitch.money import MAX_MINOR_UNITS, is_currency
from payswitch.offline import sale_ids
from payswitch.offline.formats import Allowance, FormatError
from payswitch.offline.formats import sign_allowance as _sign
from payswitch.v1 import offline_pb2, offline_pb2_grpc
from payswitch.world.topology import CardConfig


class OfflineIssuer(offline_pb2_grpc.IssuerOfflineServiceServicer):
    def __init__(
        self,
        issuer_id: str,
        pool: Any,
        books: OfflineBooks,
        accounts: Mapping[str, str],
        *,
        ttl_s: int = 86_400,
        max_cap: int = 50_000,
        clock: Callable[[], float] = time.time,
        ledger_books: Bookkeeper | None = None,
    ) -> None:
        self.issuer_id = issuer_id
        self.ledger_books = ledger_books
        self.pool = pool
        self.books = books
        self.accounts = dict(accounts)  # account id -> its currency
        self.ttl_s = ttl_s
        self.max_cap = max_cap
        self.clock = clock
        self.revoked: set[int] = set()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"offline-{issuer_id}")

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.books.close()

    async def _books(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _invalid(self, context: grpc.aio.ServicerContext, field: str, why: str) -> None:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {why}")

    async def IssueOfflineAllowance(
        self,
        request: offline_pb2.IssueOfflineAllowanceRequest,
        context: grpc.aio.ServicerContext,
    ) -> offline_pb2.IssueOfflineAllowanceResponse:
        g = request.grant
        if g.issuer != self.issuer_id:
            await self._invalid(context, "issuer", "not this issuer")
        if g.account_id not in self.accounts:
            await self._invalid(context, "account_id", "no such account at this issuer")
        if not is_currency(g.currency) or self.accounts.get(g.account_id) != g.currency:
            await self._invalid(context, "currency", "must be the account's ISO 4217 currency")
        if not 0 < g.cumulative_cap <= min(self.max_cap, MAX_MINOR_UNITS):
            await self._invalid(context, "cumulative_cap", f"must be in 1..{self.max_cap}")
        if not 0 < g.per_tx_cap <= g.cumulative_cap:
            await self._invalid(context, "per_tx_cap", "must be in 1..cumulative_cap")
        if not 0 < g.count_cap <= 1000:
            await self._invalid(context, "count_cap", "must be in 1..1000")
        now = int(self.clock())
        version = await self.pool.run(hsm_offline.ensure, self.issuer_id)
        try:
            allowance = Allowance(
                self.issuer_id, version, "al-" + secrets.token_hex(12), g.card_token,
                bytes(g.device_public_key), g.per_tx_cap, g.cumulative_cap, g.count_cap,
                g.currency, now, now + self.ttl_s,
            )  # fmt: skip
        except FormatError as exc:
            await self._invalid(context, exc.field, "malformed")
            raise AssertionError("abort returned") from exc
        returned = 0
        if g.replaces_allowance_id:
            returned = await self._books(self.books.release, g.replaces_allowance_id)
        await self._books(
            self.books.hold, allowance.allowance_id, g.account_id, g.currency, g.cumulative_cap
        )
        sig = await self.pool.run(_sign_job, self.issuer_id, version, allowance.canonical())
        return offline_pb2.IssueOfflineAllowanceResponse(
            allowance=offline_pb2.GrantOfflineAllowanceResponse(
                allowance=allowance.canonical(), allowance_signature=sig, returned=returned
            )
        )

    async def GetOfflineKeys(
        self, request: offline_pb2.GetOfflineKeysRequest, context: grpc.aio.ServicerContext
    ) -> offline_pb2.GetOfflineKeysResponse:
        await self.pool.run(hsm_offline.ensure, self.issuer_id)
        keys = await self.pool.run(hsm_offline.public_keys, self.issuer_id)
        return offline_pb2.GetOfflineKeysResponse(
            keys=[
                offline_pb2.OfflineIssuerKey(issuer=self.issuer_id, version=v, public_key=k)
                for v, k in sorted(keys.items())
            ],
            revoked_keys=[
                offline_pb2.OfflineIssuerKey(issuer=self.issuer_id, version=v)
                for v in sorted(self.revoked)
            ],
        )

    async def PostOfflineSpend(
        self, request: offline_pb2.PostOfflineSpendRequest, context: grpc.aio.ServicerContext
    ) -> offline_pb2.PostOfflineSpendResponse:
        if len(request.spend_key) != 64 or set(request.spend_key) - set("0123456789abcdef"):
            await self._invalid(context, "spend_key", "must be 64 lowercase hex digits")
        if request.amount <= 0:
            await self._invalid(context, "amount", "must be > 0")
        try:
            posted = await self._books(
                self.books.post, request.spend_key, request.allowance_id, request.amount
            )
        except OfflineBooksError:
            await self._invalid(context, "allowance_id", "no hold for this allowance")
            raise AssertionError("abort returned") from None
        if self.ledger_books is not None:
            await self._hold_for_clearing(request, context)
        return offline_pb2.PostOfflineSpendResponse(
            from_hold=posted.from_hold, charged=posted.charged, repeated=posted.repeated
        )

    async def _hold_for_clearing(
        self, request: offline_pb2.PostOfflineSpendRequest, context: grpc.aio.ServicerContext
    ) -> None:
        """Hold the spend in the main books under its RRN (idempotent: an advice)."""
        assert self.ledger_books is not None
        hold = await self._books(self.books.state, request.allowance_id)
        if hold is None or hold.currency != request.currency:
            await self._invalid(context, "currency", "must be the allowance's")
            return
        key = request.spend_key
        code = await self.ledger_books.advise(
            sale_ids.rrn_of_spend(key), CardConfig("", "", hold.account_id), request.amount,
            request.currency, sale_ids.auth_code_of_spend(key),
        )  # fmt: skip
        if code != APPROVED:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"books: advice {code}")


def _sign_job(session: Any, owner: str, version: int, body: bytes) -> bytes:
    """One HSM job: sign the allowance's canonical bytes with ``owner``'s offline key."""
    return _sign(
        Allowance.parse(body), lambda d: hsm_offline.sign_digest(session, owner, version, d)
    ).signature
