"""Stateful property test: the transaction state machine as compare-and-sets, on every backend.

Hypothesis creates transactions and throws every kind of write at them in random order: legal
and illegal transitions (plain and typed), raw compare-and-sets on any column with current or
stale expectations (an old version, an old state, another amount), money that is not an
integer, duplicate transmissions, and two writers racing on two connections. A plain model (a
dict of the rows as they must be) predicts each answer from the rules written out below, not
from the production checks.

Invariants: the store's row always equals the model's (checked after every write and for every
row at the end); an illegal transition, a failed compare-and-set or refused money change
nothing; versions only grow, by one per applied write; captured and refunded amounts stay
within 0 <= refunded <= captured <= amount; of two racing writes the outcome is that of one
order or the other.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, rule
from stateful_kit import Driver, run_id, run_machine, tally
from storekit import NOW, new_tx

from switch.domain.errors import NotFound
from switch.domain.transactions import (
    TRANSITIONS,
    TYPED_TRANSITIONS,
    CasFailed,
    Changes,
    DuplicateTransmission,
    Expect,
    IllegalTransition,
    Transaction,
    TxState,
    TxType,
)
from switch.store.base import Store

STATES = list(TxState)
TYPES = list(TxType)
CODES = ["00", "05", "51", "91", "96"]

# An outcome as the model predicts it and as the store gave it.
Outcome = tuple[str, Transaction | None]


def legal(frm: TxState, to: TxState, tx_type: TxType | None) -> bool:
    """The state machine, restated: a typed pair is legal only when the expected type is its
    type; any other pair only when TRANSITIONS lists it."""
    only = TYPED_TRANSITIONS.get((frm, to))
    if only is not None:
        return tx_type is only
    return to in TRANSITIONS[frm]


def predict(row: Transaction | None, expect: Expect, changes: Changes) -> Outcome:
    """What a compare-and-set of ``changes`` under ``expect`` must do to ``row``."""
    for name in ("captured_minor", "refunded_minor"):
        for value in (getattr(expect, name), getattr(changes, name)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                return ("value", None)
    if changes.state is not None:
        if expect.state is None or not legal(expect.state, changes.state, expect.type):
            return ("illegal", None)
    if row is None:
        return ("notfound", None)
    for f in dataclasses.fields(Expect):
        want = getattr(expect, f.name)
        if want is not None and getattr(row, f.name) != want:
            return ("cas", row)
    applied = {f.name: getattr(changes, f.name) for f in dataclasses.fields(Changes)}
    new = row.copy(**{k: v for k, v in applied.items() if v is not None})  # type: ignore[arg-type]
    return ("ok", new.copy(version=row.version + 1))


async def outcome(call: Awaitable[Transaction]) -> Outcome:
    """What the store did, in the model's terms."""
    try:
        return ("ok", await call)
    except CasFailed as exc:
        return ("cas", exc.current)
    except IllegalTransition:
        return ("illegal", None)
    except ValueError:
        return ("value", None)
    except NotFound:
        return ("notfound", None)


class TransactionMachine(RuleBasedStateMachine):
    driver: Driver
    txs = Bundle("txs")

    def __init__(self) -> None:
        super().__init__()
        tally("examples")
        self.run = run_id()
        self.rows: dict[str, Transaction] = {}  # the model: every row as it must be
        self.seen: dict[str, list[Transaction]] = {}  # every version of each, for stale CAS
        self.n = 0

    # --- helpers ------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        return self.driver.store

    def call(self, coro: Awaitable[Any]) -> Any:
        async def wrap() -> Any:
            return await coro

        tally("store calls")
        return self.driver.run(wrap())

    def stored(self, tx_id: str) -> Transaction | None:
        return self.call(self.store.get_transaction(tx_id))

    def accept(self, tx_id: str, expected: Outcome, got: Outcome) -> None:
        """The store's answer is the model's, and the row is the model's afterwards."""
        assert got == expected, (got, expected)
        tally(f"outcome: {expected[0]}")
        if expected[0] == "ok":
            new = expected[1]
            assert new is not None
            old = self.rows[tx_id]
            assert new.version == old.version + 1  # versions only grow, one per write
            self.rows[tx_id] = new
            self.seen[tx_id].append(new)
        self.check_row(tx_id)

    def check_row(self, tx_id: str) -> None:
        want = self.rows.get(tx_id)
        assert self.stored(tx_id) == want
        if want is not None:
            assert 0 <= want.refunded_minor <= want.captured_minor <= want.amount_minor

    def draw_changes(self, data: st.DataObject, row: Transaction, to: TxState | None) -> Changes:
        """Changes of the mutable columns; money within what the row allows."""
        captured = data.draw(st.none() | st.integers(row.refunded_minor, row.amount_minor))
        refunded = data.draw(st.none() | st.integers(0, row.captured_minor))
        if captured is not None and refunded is not None:
            refunded = min(refunded, captured)
        return Changes(
            state=to,
            acquirer_id=data.draw(st.none() | st.sampled_from(["ACQ1", "ACQ2"])),
            captured_minor=captured,
            refunded_minor=refunded,
            response_code=data.draw(st.none() | st.sampled_from(CODES)),
            auth_code=data.draw(st.none() | st.sampled_from(["A1B2C3", "Z9"])),
            updated_at=data.draw(st.none() | st.integers(1, 500).map(lambda s: NOW + s / 8)),
            deadline_at=data.draw(st.none() | st.integers(1, 500).map(lambda s: NOW + s / 4)),
        )

    def draw_target(self, data: st.DataObject, frm: TxState) -> TxState:
        """Mostly a legal next state (plain or typed), sometimes any state at all."""
        nxt = sorted(TRANSITIONS[frm] | {to for (f, to) in TYPED_TRANSITIONS if f is frm})
        if nxt:
            return data.draw(st.sampled_from(nxt) | st.sampled_from(STATES))
        return data.draw(st.sampled_from(STATES))

    # --- rules --------------------------------------------------------------------------
    @initialize(target=txs)
    def first(self) -> str:
        return self._create(TxType.AUTHORIZATION, TxState.RECEIVED, 5000)

    @rule(
        target=txs,
        tx_type=st.sampled_from(TYPES),
        state=st.just(TxState.RECEIVED) | st.sampled_from(STATES),
        amount=st.integers(1, 10_000_000),
    )
    def create(self, tx_type: TxType, state: TxState, amount: int) -> str:
        return self._create(tx_type, state, amount)

    def _create(self, tx_type: TxType, state: TxState, amount: int) -> str:
        self.n += 1
        tx = new_tx(
            id=f"st-{self.run}-{self.n:04d}",
            type=tx_type,
            state=state,
            terminal_id=f"T{self.run}",
            stan=self.n,
            amount_minor=amount,
            idempotency_key="",
        )
        self.call(self.store.insert_transaction(tx))
        self.rows[tx.id] = tx
        self.seen[tx.id] = [tx]
        self.check_row(tx.id)
        return tx.id

    @rule(tx_id=txs, amount=st.integers(1, 99))
    def resend(self, tx_id: str, amount: int) -> None:
        """The same (terminal, local date, STAN) again, under another id: refused, naming the
        first; nothing is written."""
        first = self.rows[tx_id]
        again = new_tx(
            id=f"{tx_id}-again",
            terminal_id=first.terminal_id,
            stan=first.stan,
            local_date=first.local_date,
            amount_minor=amount,
        )
        try:
            self.call(self.store.insert_transaction(again))
        except DuplicateTransmission as exc:
            assert exc.existing_id == tx_id
        else:
            raise AssertionError("a duplicate transmission was inserted")
        assert self.stored(again.id) is None
        self.check_row(tx_id)

    @rule(tx_id=txs, data=st.data())
    def transition(self, tx_id: str, data: st.DataObject) -> None:
        """A plain transition from the current state or a stale one, to a legal or any state."""
        row = self.rows[tx_id]
        frm = data.draw(st.just(row.state) | st.sampled_from(STATES), label="from")
        to = self.draw_target(data, frm)
        changes = self.draw_changes(data, row, None)
        expected: Outcome = (
            predict(row, Expect(state=frm), changes.to(to))
            if legal(frm, to, None)
            else ("illegal", None)
        )
        got = self.call(outcome(self.store.transition(tx_id, frm, to, changes)))
        self.accept(tx_id, expected, got)

    @rule(tx_id=txs, data=st.data())
    def advance(self, tx_id: str, data: st.DataObject) -> None:
        """A legal next step from the current state (typed where the pair needs the type), so
        that rows get deep into the machine; nothing once the state is final."""
        row = self.rows[tx_id]
        plain = sorted(TRANSITIONS[row.state])
        typed = sorted(
            to for (f, to), t in TYPED_TRANSITIONS.items() if f is row.state and t is row.type
        )
        if not plain and not typed:
            return
        to = data.draw(st.sampled_from(plain + typed), label="to")
        changes = self.draw_changes(data, row, None)
        if to in typed:
            expected = predict(row, Expect(state=row.state, type=row.type), changes.to(to))
            call = self.store.typed_transition(tx_id, row.state, to, row.type, changes)
        else:
            expected = predict(row, Expect(state=row.state), changes.to(to))
            call = self.store.transition(tx_id, row.state, to, changes)
        tally(f"advance: {row.state} -> {to}")
        self.accept(tx_id, expected, self.call(outcome(call)))

    @rule(tx_id=txs, data=st.data())
    def typed_transition(self, tx_id: str, data: st.DataObject) -> None:
        """A transition expecting a type: the typed pairs need the right one, the others any."""
        row = self.rows[tx_id]
        frm = data.draw(st.just(row.state) | st.sampled_from(STATES), label="from")
        to = self.draw_target(data, frm)
        tx_type = data.draw(st.just(row.type) | st.sampled_from(TYPES), label="type")
        changes = self.draw_changes(data, row, None)
        expected = predict(row, Expect(state=frm, type=tx_type), changes.to(to))
        call = self.store.typed_transition(tx_id, frm, to, tx_type, changes)
        self.accept(tx_id, expected, self.call(outcome(call)))

    @rule(tx_id=txs, data=st.data())
    def compare_and_set(self, tx_id: str, data: st.DataObject) -> None:
        """A raw compare-and-set: expectations current or stale (an old version of the row),
        changes with or without a state."""
        row = self.rows[tx_id]
        basis = data.draw(st.sampled_from(self.seen[tx_id]), label="expect from version")
        pick = data.draw(st.sets(st.sampled_from([f.name for f in dataclasses.fields(Expect)])))
        expect = Expect(**{name: getattr(basis, name) for name in pick})
        to = data.draw(st.none() | st.just(self.draw_target(data, row.state)), label="to")
        changes = self.draw_changes(data, row, to)
        expected = predict(row, expect, changes)
        got = self.call(outcome(self.store.compare_and_set(tx_id, expect, changes)))
        self.accept(tx_id, expected, got)

    @rule(tx_id=txs, data=st.data())
    def stale_version(self, tx_id: str, data: st.DataObject) -> None:
        """A writer that read the row some versions ago: refused unless nothing moved since."""
        row = self.rows[tx_id]
        old = data.draw(st.sampled_from(self.seen[tx_id]), label="read at")
        to = self.draw_target(data, old.state)
        expect = Expect(state=old.state, version=old.version)
        changes = self.draw_changes(data, old, to)
        expected = predict(row, expect, changes)
        got = self.call(outcome(self.store.compare_and_set(tx_id, expect, changes)))
        self.accept(tx_id, expected, got)

    @rule(
        tx_id=txs,
        column=st.sampled_from(["captured_minor", "refunded_minor"]),
        bad=st.sampled_from([12.5, 1.0, True, "100"]),
        where=st.sampled_from(["expect", "change"]),
    )
    def money_not_integer(self, tx_id: str, column: str, bad: object, where: str) -> None:
        """Money that is not integer minor units is refused before anything is written."""
        expect = Expect(**({column: bad} if where == "expect" else {}))  # type: ignore[arg-type]
        changes = Changes(**({column: bad} if where == "change" else {}))  # type: ignore[arg-type]
        got = self.call(outcome(self.store.compare_and_set(tx_id, expect, changes)))
        self.accept(tx_id, ("value", None), got)

    @rule(frm=st.sampled_from(STATES), to=st.sampled_from(STATES))
    def missing(self, frm: TxState, to: TxState) -> None:
        """A transition of a transaction the store never had."""
        tx_id = f"st-{self.run}-missing"
        expected = predict(None, Expect(state=frm), Changes(state=to))
        got = self.call(outcome(self.store.transition(tx_id, frm, to)))
        assert got == expected
        assert self.stored(tx_id) is None

    @rule(tx_id=txs, data=st.data())
    def race(self, tx_id: str, data: st.DataObject) -> None:
        """Two writers on two connections at once, each expecting the row it last saw: the
        result is that of one order or the other (never both applied on the same version,
        never a mix)."""
        row = self.rows[tx_id]
        # Both go to one state with the same money (other columns differ): one applies
        # whichever wins, so what Hypothesis draws next never depends on the winner.
        to = self.draw_target(data, row.state)
        shared = self.draw_changes(data, row, to)
        ops = []
        for i in range(2):
            expect = Expect(state=row.state, version=row.version)
            if data.draw(st.booleans(), label=f"writer {i} expects the version"):
                expect = Expect(state=row.state)
            own = dataclasses.replace(
                self.draw_changes(data, row, to),
                captured_minor=shared.captured_minor,
                refunded_minor=shared.refunded_minor,
            )
            ops.append((expect, own))
        a, b = self.driver.stores[0], self.driver.stores[-1]

        async def both() -> list[Outcome]:
            calls = [s.compare_and_set(tx_id, e, c) for s, (e, c) in zip((a, b), ops, strict=True)]
            return list(await asyncio.gather(*(outcome(c) for c in calls)))

        got = self.call(both())
        orders = []
        for first, second in ((0, 1), (1, 0)):
            one = predict(row, *ops[first])
            after = one[1] if one[0] == "ok" else row
            two = predict(after, *ops[second])
            results = {first: one, second: two}
            final = two[1] if two[0] == "ok" else after
            orders.append(([results[0], results[1]], final))
        tally(f"race: {'/'.join(kind for kind, _ in got)}")
        matching = [final for results, final in orders if results == got]
        assert matching, (got, orders)
        final = matching[0]
        assert final is not None
        applied = sum(1 for kind, _ in got if kind == "ok")
        assert final.version == row.version + applied
        if applied:
            self.rows[tx_id] = final
            self.seen[tx_id].extend(r for kind, r in got if kind == "ok" and r is not None)
        self.check_row(tx_id)

    def teardown(self) -> None:
        for tx_id in self.rows:
            self.check_row(tx_id)


def test_transaction_state_machine(store_url: str) -> None:
    driver = Driver(store_url, connections=2)
    try:
        run_machine(TransactionMachine, driver)
    finally:
        driver.close()


async def test_cas_without_changes_bumps_the_version(store: Store) -> None:
    """Found by the machine: a compare-and-set that changes no column (``Changes()``) failed
    on Cassandra (its CQL read ``SET , version = ?``) while SQLite bumped the version."""
    tx = new_tx()
    await store.insert_transaction(tx)
    out = await store.compare_and_set(tx.id, Expect(state=TxState.RECEIVED), Changes())
    assert out == tx.copy(version=2)
    assert await store.get_transaction(tx.id) == tx.copy(version=2)
    with pytest.raises(CasFailed):
        await store.compare_and_set(tx.id, Expect(version=1), Changes())
    assert await store.get_transaction(tx.id) == tx.copy(version=2)
