"""Transactions in the store: every state change a compare-and-set.

SQLite does a compare-and-set as a serialised write, Cassandra as a lightweight transaction;
both validate it first with ``switch.domain.transactions.check_cas``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from switch.domain.transactions import (
    Changes,
    Expect,
    Transaction,
    TxState,
    TxType,
    check_transition,
)


class TransactionStore(abc.ABC):
    """Transactions with compare-and-set transitions, and the reads recovery needs."""

    # --- transactions -----------------------------------------------------------------
    @abc.abstractmethod
    async def insert_transaction(self, tx: Transaction) -> None:
        """Insert a new transaction; raises DuplicateTransmission when (terminal_id,
        local_date, stan) is taken, ValueError for non-integer money."""

    @abc.abstractmethod
    async def get_transaction(self, tx_id: str) -> Transaction | None: ...

    @abc.abstractmethod
    async def compare_and_set(self, tx_id: str, expected: Expect, changes: Changes) -> Transaction:
        """Apply ``changes`` iff every field given in ``expected`` holds; bumps
        ``version``. Raises CasFailed with the current row, or NotFound. Arguments are
        validated by ``check_cas`` first (ValueError, IllegalTransition)."""

    async def transition(
        self,
        tx_id: str,
        from_state: TxState,
        to_state: TxState,
        changes: Changes | None = None,
    ) -> Transaction:
        """State-machine transition as a compare-and-set on ``state``."""
        check_transition(from_state, to_state)
        updates = (changes or Changes()).to(to_state)
        return await self.compare_and_set(tx_id, Expect(state=from_state), updates)

    async def typed_transition(
        self,
        tx_id: str,
        from_state: TxState,
        to_state: TxState,
        tx_type: TxType,
        changes: Changes | None = None,
    ) -> Transaction:
        """A transition of ``TYPED_TRANSITIONS``: the compare-and-set expects the type too."""
        updates = (changes or Changes()).to(to_state)
        return await self.compare_and_set(tx_id, Expect(state=from_state, type=tx_type), updates)

    @abc.abstractmethod
    async def transactions_in_state(
        self,
        state: TxState,
        older_than: float,
        limit: int = 100,
        after: tuple[float, str] | None = None,
    ) -> list[Transaction]:
        """Transactions in ``state`` whose deadline_at is before ``older_than`` (recovery),
        in (deadline_at, id) order, at most ``limit``; with ``after``, only those past that
        (deadline_at, id): the last one of the previous page, so a day is read in pages."""

    @abc.abstractmethod
    async def get_transactions(self, tx_ids: Sequence[str]) -> list[Transaction]:
        """The transactions of ``tx_ids`` that exist, in the order asked (a missing id is
        left out): the back office reads a page of a batch in one call, not one per item."""

    @abc.abstractmethod
    async def settle_presented(
        self, captures: Sequence[str], refunds: Sequence[str], now: float
    ) -> list[Transaction]:
        """A settlement report's page applied at once: every ``captures`` id CAPTURED ->
        SETTLED and every ``refunds`` id a REFUND APPROVED -> SETTLED (``TYPED_TRANSITIONS``),
        each a compare-and-set with ``updated_at=now``. Returns the transactions of the page
        as they are afterwards (in the order asked; unknown ids left out): one already SETTLED
        (an earlier run) or in another state is returned unchanged, so a rerun after a crash
        settles nothing twice. SQLite applies the page in one transaction; Cassandra runs the
        page's lightweight transactions concurrently."""

    @abc.abstractmethod
    async def refunds_of(self, original_id: str) -> list[Transaction]:
        """The refund transactions linked to ``original_id``, oldest first."""
