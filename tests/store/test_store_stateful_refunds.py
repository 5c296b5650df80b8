"""Stateful property test: refund reservations on one captured sale, on every backend.

Refunds of one sale begin (``begin_refund``: insert, reserve on the original by compare-and-set,
RECEIVED -> PENDING) alone or several at once on two connections; each then is confirmed
(PENDING -> APPROVED -> SETTLED), declined with its reservation released (the refund
operation's PENDING -> DECLINED, then ``reserve(-amount)``), or left UNKNOWN (the reservation
stays); steps are retried (a resent refund, a second decline of the same refund); requests die
after inserting their refund or after reserving, and the recovery sweep
(``release_orphans``) gives back what the dead ones held. A model of the refunds predicts
every answer.

Invariants: the original's refunded_minor is exactly the sum of what the model's live
reservations hold, and never exceeds captured_minor; a release gives back exactly what was
reserved; a retry moves nothing; of refunds begun at once the outcome is that of some order
of them, one after the other.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Awaitable
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from stateful_kit import Driver, run_id, run_machine, tally
from storekit import NOW, new_tx

from payswitch import codes
from switch.domain.transactions import (
    CasFailed,
    DuplicateTransmission,
    Transaction,
    TxState,
    TxType,
)
from switch.recovery.refund_reservations import (
    ORPHAN_AFTER_S,
    begin_refund,
    release_orphans,
    reserve,
)
from switch.store.base import Store

HOLDING = frozenset(
    {TxState.PENDING, TxState.APPROVED, TxState.SETTLED, TxState.UNKNOWN, TxState.RECEIVED}
)


@dataclasses.dataclass
class Refund:
    """What the model knows of one refund."""

    id: str
    amount: int
    state: TxState
    reserved: bool  # its amount is counted in the original's refunded_minor
    code: str = ""


class RefundMachine(RuleBasedStateMachine):
    driver: Driver

    def __init__(self) -> None:
        super().__init__()
        tally("examples")
        self.run = run_id()
        self.refunds: dict[str, Refund] = {}
        self.n = 0
        self.original: Transaction | None = None

    # --- helpers ------------------------------------------------------------------------
    def store(self, conn: int = 0) -> Store:
        return self.driver.stores[conn % len(self.driver.stores)]

    def call(self, coro: Awaitable[Any]) -> Any:
        async def wrap() -> Any:
            return await coro

        tally("store calls")
        return self.driver.run(wrap())

    @property
    def original_id(self) -> str:
        assert self.original is not None
        return self.original.id

    @property
    def captured(self) -> int:
        assert self.original is not None
        return self.original.captured_minor

    def reserved(self) -> int:
        return sum(r.amount for r in self.refunds.values() if r.reserved)

    def in_state(self, *states: TxState) -> list[Refund]:
        """The refunds in ``states``, by (state, amount, id): refunds begun at once are alike
        but which of them won is timing, so a draw must land on a refund by what it is, not
        by its id (Hypothesis needs the same draws to find the same case again)."""
        found = [r for r in self.refunds.values() if r.state in states]
        return sorted(found, key=lambda r: (r.state, r.amount, r.id))

    def new_refund(self, amount: int) -> Transaction:
        assert self.original is not None
        self.n += 1
        return new_tx(
            id=f"rf-{self.run}-{self.n:03d}",
            type=TxType.REFUND,
            terminal_id=f"T{self.run}",
            stan=self.n + 1,
            amount_minor=amount,
            original_id=self.original.id,
            idempotency_key="",
            deadline_at=NOW,
        )

    def stored(self, tx_id: str) -> Transaction:
        tx = self.call(self.store().get_transaction(tx_id))
        assert tx is not None
        return tx

    def check_refund(self, r: Refund) -> None:
        tx = self.stored(r.id)
        assert (tx.state, tx.amount_minor, tx.type) == (r.state, r.amount, TxType.REFUND)
        if r.code:
            assert tx.response_code == r.code

    def begun(self, r: Refund, got: Transaction) -> None:
        """Record how begin_refund left a refund the model expected to go ``r.state``."""
        assert (got.id, got.state) == (r.id, r.state), (got, r)
        self.refunds[r.id] = r
        self.check_refund(r)

    # --- rules --------------------------------------------------------------------------
    @initialize(captured=st.integers(100, 10_000), tip=st.integers(0, 50))
    def sale(self, captured: int, tip: int) -> None:
        """One captured sale to refund (captured may exceed the authorized amount: a tip)."""
        sale = new_tx(
            id=f"sale-{self.run}",
            terminal_id=f"T{self.run}",
            stan=1,
            state=TxState.CAPTURED,
            amount_minor=max(captured - tip, 1),
            captured_minor=captured,
            idempotency_key="",
        )
        self.call(self.store().insert_transaction(sale))
        self.original = sale

    @rule(data=st.data(), conn=st.integers(0, 1))
    def begin(self, data: st.DataObject, conn: int) -> None:
        """A refund begins: reserved and PENDING when the amount is still available, else
        DECLINED 13 with nothing reserved."""
        left = self.captured - self.reserved()
        amount = self.draw_amount(data)
        tx = self.new_refund(amount)
        got = self.call(begin_refund(self.store(conn), tx))
        fits = amount <= left
        tally("begin: reserved" if fits else "begin: declined, not available")
        state = TxState.PENDING if fits else TxState.DECLINED
        self.begun(Refund(tx.id, amount, state, fits, "" if fits else codes.INVALID_AMOUNT), got)

    def draw_amount(self, data: st.DataObject) -> int:
        """Mostly an amount that may fit what is left, sometimes more than the capture."""
        left = self.captured - self.reserved()
        return data.draw(
            st.integers(1, max(left // 2, 1))
            | st.integers(1, max(left, 1))
            | st.integers(1, self.captured + 50),
            label="amount",
        )

    @rule(data=st.data(), n=st.integers(2, 3))
    def begin_at_once(self, data: st.DataObject, n: int) -> None:
        """Several refunds of one amount begin at once on both connections: the outcome is
        that of them begun one after the other in some order. (One amount: which of them win
        the last money left is a matter of timing, so that what Hypothesis draws next must
        not depend on it; how many win does not.)"""
        amounts = [self.draw_amount(data)] * n
        txs = [self.new_refund(a) for a in amounts]

        async def all_begun() -> list[Transaction]:
            return list(
                await asyncio.gather(*(begin_refund(self.store(i), tx) for i, tx in enumerate(txs)))
            )

        got = self.call(all_begun())
        states = [g.state for g in got]
        orders = []
        for order in itertools.permutations(range(len(txs))):
            left, fits = self.captured - self.reserved(), [False] * len(txs)
            for i in order:
                fits[i] = amounts[i] <= left
                left -= amounts[i] if fits[i] else 0
            orders.append([TxState.PENDING if f else TxState.DECLINED for f in fits])
        assert states in orders, (states, amounts, self.captured - self.reserved())
        tally(f"at once: {sum(s is TxState.PENDING for s in states)} of {len(txs)} reserved")
        for tx, g in zip(txs, got, strict=True):
            fits = g.state is TxState.PENDING
            code = "" if fits else codes.INVALID_AMOUNT
            self.begun(Refund(tx.id, tx.amount_minor, g.state, fits, code), g)

    @precondition(lambda self: self.in_state(TxState.PENDING))
    @rule(data=st.data(), to=st.sampled_from([TxState.APPROVED, TxState.UNKNOWN]))
    def answer(self, data: st.DataObject, to: TxState) -> None:
        """The issuer approves the refund, or its answer is unknown: the reservation stays."""
        r = data.draw(st.sampled_from(self.in_state(TxState.PENDING)))
        self.call(self.store().transition(r.id, TxState.PENDING, to))
        r.state = to
        self.check_refund(r)

    @precondition(lambda self: self.in_state(TxState.APPROVED))
    @rule(data=st.data())
    def settle(self, data: st.DataObject) -> None:
        """The settlement run settles an approved refund (the refund-only typed transition)."""
        r = data.draw(st.sampled_from(self.in_state(TxState.APPROVED)))
        self.call(
            self.store().typed_transition(r.id, TxState.APPROVED, TxState.SETTLED, TxType.REFUND)
        )
        r.state = TxState.SETTLED
        self.check_refund(r)

    @precondition(lambda self: self.refunds)
    @rule(data=st.data(), conn=st.integers(0, 1))
    def decline(self, data: st.DataObject, conn: int) -> None:
        """The issuer declines: PENDING -> DECLINED and, only when that transition was this
        request's, the reservation released (as the refund operation does). Declining a refund
        that is no longer PENDING (a retry, a late answer) fails and releases nothing."""
        r = data.draw(st.sampled_from(self.in_state(*TxState)))
        store = self.store(conn)
        try:
            self.call(
                store.transition(r.id, TxState.PENDING, TxState.DECLINED),
            )
        except CasFailed as exc:
            assert r.state is not TxState.PENDING
            assert exc.current.state is r.state
            tally("decline: retry, nothing released")
            self.check_refund(r)
            return
        assert r.state is TxState.PENDING
        assert self.call(reserve(store, self.original_id, -r.amount))
        r.state, r.reserved = TxState.DECLINED, False
        tally("decline: released")
        self.check_refund(r)

    @precondition(lambda self: self.refunds)
    @rule(data=st.data(), conn=st.integers(0, 1))
    def resend(self, data: st.DataObject, conn: int) -> None:
        """The same refund transmitted again (same terminal, date, STAN): refused as a
        duplicate, nothing stored or reserved."""
        r = data.draw(st.sampled_from(self.in_state(*TxState)))
        tx = self.stored(r.id)
        again = dataclasses.replace(tx, id=f"{r.id}-again", state=TxState.RECEIVED, version=1)
        try:
            self.call(begin_refund(self.store(conn), again))
        except DuplicateTransmission as exc:
            assert exc.existing_id == r.id
        else:
            raise AssertionError("a resent refund was stored again")
        assert self.call(self.store().get_transaction(again.id)) is None

    @rule(data=st.data(), reserved=st.booleans())
    def die(self, data: st.DataObject, reserved: bool) -> None:
        """A request dies after inserting its refund (RECEIVED), before or after reserving;
        its reservation, if it made one, is still counted until recovery."""
        amount = self.draw_amount(data)
        tx = self.new_refund(amount)
        self.call(self.store().insert_transaction(tx))
        took = False
        if reserved:
            took = self.call(reserve(self.store(), tx.original_id, amount))
            assert took == (amount <= self.captured - self.reserved())
        tally(f"die: {'after' if took else 'before'} reserving")
        r = Refund(tx.id, amount, TxState.RECEIVED, took)
        self.refunds[r.id] = r
        self.check_refund(r)

    @rule()
    def recover(self) -> None:
        """The recovery sweep, long after every dead request's deadline: each dead refund is
        DECLINED 96 and the original keeps only what live refunds hold."""
        self.call(release_orphans(self.store(), now=NOW + ORPHAN_AFTER_S + 10))
        for r in self.in_state(TxState.RECEIVED):
            r.state, r.reserved, r.code = TxState.DECLINED, False, codes.SYSTEM_MALFUNCTION
            tally("recover: dead refund declined")
            self.check_refund(r)

    # --- invariants ---------------------------------------------------------------------
    @invariant()
    def reservations(self) -> None:
        if self.original is None:
            return
        got = self.stored(self.original.id)
        assert got.refunded_minor == self.reserved(), (got.refunded_minor, self.reserved())
        assert 0 <= got.refunded_minor <= got.captured_minor == self.captured
        assert got.state is TxState.CAPTURED
        for r in self.refunds.values():
            assert r.state in HOLDING or not r.reserved  # only a live refund holds money

    def teardown(self) -> None:
        if self.original is None:
            return
        self.recover()  # leaves no RECEIVED refund behind for the next example's sweeps
        self.reservations()
        for r in self.refunds.values():
            self.check_refund(r)


def test_refund_reservations(store_url: str) -> None:
    driver = Driver(store_url, connections=2)
    try:
        run_machine(RefundMachine, driver)
    finally:
        driver.close()
