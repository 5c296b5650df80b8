"""The issuer's books seen from the event loop: every SQLite call on one dedicated thread.

A single worker thread keeps SQLite's blocking I/O off the event loop and serialises the
operations, which is what makes each one atomic against the others without locks.

A request cancelled while its operation waits in the queue never runs; one cancelled while
running completes (its answer is lost, as when a response is dropped on the wire).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from issuer.books import AccountView, AuthDecision, Books, HoldView
from issuer.books_fx import AuthFx, Converted
from issuer.books_settlement import IssuerRules, PresentmentIn, PresentmentOut
from payswitch.atc import AtcState, AtcUse
from payswitch.v1 import common_pb2
from payswitch.world.topology import AccountConfig, CardConfig

T = TypeVar("T")


class Bookkeeper:
    def __init__(self, executor: ThreadPoolExecutor, books: Books) -> None:
        self._executor = executor
        self._books = books

    @classmethod
    async def open(cls, path: str | Path, accounts: Iterable[AccountConfig]) -> Bookkeeper:
        """Open (or create) the books at ``path`` and open any accounts they lack."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="books")
        loop = asyncio.get_running_loop()
        accounts = tuple(accounts)

        def _open() -> Books:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            books = Books(path)
            books.seed(accounts)
            return books

        books = await loop.run_in_executor(executor, _open)
        return cls(executor, books)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def authorize(
        self,
        rrn: str,
        card: CardConfig | None,
        amount: int,
        currency: str,
        presented_expiry: str,
        today: date,
        *,
        verdict: common_pb2.ResponseCode | None = None,
        arpc: bytes = b"",
        atc: AtcUse | None = None,
        conversion: Converted | None = None,
    ) -> AuthDecision:
        return await self._run(
            functools.partial(
                self._books.authorize,
                rrn,
                card,
                amount,
                currency,
                presented_expiry,
                today,
                verdict=verdict,
                arpc=arpc,
                atc=atc,
                conversion=conversion,
            )
        )

    def set_atc_window(self, window: int) -> None:
        self._books.atc_window = window

    async def atc_states(self) -> dict[str, AtcState]:
        return await self._run(self._books.atc_states)

    async def atc_state(self, card: str) -> AtcState | None:
        return await self._run(self._books.atc_state, card)

    async def set_arpc(self, rrn: str, arpc: bytes) -> bytes:
        return await self._run(self._books.set_arpc, rrn, arpc)

    async def reverse(self, original_rrn: str) -> common_pb2.ResponseCode:
        return await self._run(self._books.reverse, original_rrn)

    async def capture(
        self, original_rrn: str, amount: int, currency: str, mcc: str = ""
    ) -> common_pb2.ResponseCode:
        return await self._run(self._books.capture, original_rrn, amount, currency, mcc)

    def set_rules(self, rules: IssuerRules) -> None:
        self._books.rules = rules

    async def present_all(
        self, file_id: str, presentments: list[PresentmentIn], now: float
    ) -> list[PresentmentOut]:
        return await self._run(self._books.present_all, file_id, presentments, now)

    async def expire_holds(self, now: float) -> list[str]:
        return await self._run(self._books.expire_holds, now)

    async def refund(
        self,
        rrn: str,
        original_rrn: str,
        amount: int,
        currency: str,
        rate: Decimal | None = None,
        rate_table: str = "",
    ) -> common_pb2.ResponseCode:
        return await self._run(
            self._books.refund, rrn, original_rrn, amount, currency, rate, rate_table
        )

    async def applied_conversion(self, kind: str, rrn: str) -> Converted | None:
        return await self._run(self._books.applied_conversion, kind, rrn)

    async def sale_conversion(self, rrn: str) -> AuthFx | None:
        return await self._run(self._books.sale_conversion, rrn)

    async def advise(
        self, rrn: str, card: CardConfig | None, amount: int, currency: str, auth_code: str
    ) -> common_pb2.ResponseCode:
        return await self._run(self._books.advise, rrn, card, amount, currency, auth_code)

    async def account(self, account_id: str) -> AccountView | None:
        return await self._run(self._books.account, account_id)

    async def hold(self, rrn: str) -> HoldView | None:
        return await self._run(self._books.hold, rrn)

    async def close(self) -> None:
        await self._run(self._books.close)
        self._executor.shutdown(wait=False)  # its only job, the close, has finished
