"""Contract: transactions, duplicate transmissions, the state machine as compare-and-set."""

from __future__ import annotations

import asyncio

import pytest
from storekit import NOW, new_tx

from switch.domain.errors import NotFound, StoreUnavailable
from switch.domain.transactions import (
    TRANSITIONS,
    CasFailed,
    Changes,
    DuplicateTransmission,
    Expect,
    IllegalTransition,
    TxState,
    TxType,
)
from switch.store.base import Store


async def test_insert_and_get_round_trips_every_field(store: Store) -> None:
    tx = new_tx(
        acquirer_id="ACQ1",
        captured_minor=7,
        refunded_minor=3,
        response_code="00",
        auth_code="A1B2C3",
        original_id="tx-orig",
        deadline_at=NOW + 1.234567,
    )
    await store.insert_transaction(tx)
    got = await store.get_transaction(tx.id)
    assert got == tx
    assert type(got.state) is TxState and type(got.type) is TxType
    assert type(got.amount_minor) is int and type(got.stan) is int


async def test_get_unknown_is_none(store: Store) -> None:
    assert await store.get_transaction("no-such-tx") is None


async def test_duplicate_transmission_names_the_first(store: Store) -> None:
    first = new_tx()
    await store.insert_transaction(first)
    again = new_tx(stan=first.stan, amount_minor=99)
    with pytest.raises(DuplicateTransmission) as info:
        await store.insert_transaction(again)
    assert info.value.existing_id == first.id
    assert await store.get_transaction(again.id) is None
    assert await store.get_transaction(first.id) == first
    with pytest.raises(DuplicateTransmission) as info:
        await store.insert_transaction(first)  # the very same message sent twice
    assert info.value.existing_id == first.id


async def test_same_stan_on_another_day_or_terminal_is_no_duplicate(store: Store) -> None:
    first = new_tx()
    await store.insert_transaction(first)
    await store.insert_transaction(new_tx(stan=first.stan, local_date="2027-01-16"))
    await store.insert_transaction(new_tx(stan=first.stan, terminal_id="T0002"))


async def test_money_must_be_integer_minor_units(store: Store) -> None:
    tx = new_tx(amount_minor=12.5)
    with pytest.raises(ValueError):
        await store.insert_transaction(tx)
    assert await store.get_transaction(tx.id) is None


@pytest.mark.parametrize("from_state", list(TxState))
async def test_every_transition_from(store: Store, from_state: TxState) -> None:
    """Each allowed target succeeds (bumping version, applying changes); each other target
    raises IllegalTransition and leaves the row exactly as it was."""
    for to_state in TxState:
        tx = new_tx(state=from_state)
        await store.insert_transaction(tx)
        if to_state in TRANSITIONS[from_state]:
            out = await store.transition(
                tx.id, from_state, to_state, Changes(response_code="05", updated_at=NOW + 1)
            )
            expected = tx.copy(state=to_state, response_code="05", updated_at=NOW + 1, version=2)
            assert out == expected
            assert await store.get_transaction(tx.id) == expected
        else:
            with pytest.raises(IllegalTransition):
                await store.transition(tx.id, from_state, to_state, Changes(response_code="05"))
            assert await store.get_transaction(tx.id) == tx


async def test_cas_cannot_bypass_the_state_machine(store: Store) -> None:
    tx = new_tx(state=TxState.DECLINED)
    await store.insert_transaction(tx)
    with pytest.raises(IllegalTransition):  # a state change without an expected state
        await store.compare_and_set(
            tx.id, Expect(refunded_minor=0), Changes(state=TxState.APPROVED)
        )
    with pytest.raises(IllegalTransition):
        await store.compare_and_set(
            tx.id, Expect(state=TxState.DECLINED), Changes(state=TxState.APPROVED)
        )
    with pytest.raises(TypeError):  # fixed columns never change: they cannot even be named
        Changes(amount_minor=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):  # nor can unknown ones
        Expect(no_such_column=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):  # a change is typed, not a dict of column names
        await store.compare_and_set(tx.id, {"state": "DECLINED"}, {"amount_minor": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await store.compare_and_set(tx.id, Expect(captured_minor=0), Changes(captured_minor=1.5))
    assert await store.get_transaction(tx.id) == tx


async def test_cas_failure_returns_current_row_and_changes_nothing(store: Store) -> None:
    tx = new_tx()
    await store.insert_transaction(tx)
    moved = await store.transition(
        tx.id, TxState.RECEIVED, TxState.PENDING, Changes(acquirer_id="A")
    )
    with pytest.raises(CasFailed) as info:
        await store.transition(
            tx.id, TxState.RECEIVED, TxState.DECLINED, Changes(response_code="05")
        )
    assert info.value.current == moved
    assert await store.get_transaction(tx.id) == moved
    with pytest.raises(CasFailed) as info:  # a stale value on a non-state column
        await store.compare_and_set(
            tx.id, Expect(state=TxState.PENDING, refunded_minor=5), Changes(refunded_minor=6)
        )
    assert info.value.current == moved


async def test_cas_on_several_columns_and_version(store: Store) -> None:
    tx = new_tx(state=TxState.CAPTURED, captured_minor=1000)
    await store.insert_transaction(tx)
    one = await store.compare_and_set(
        tx.id, Expect(refunded_minor=0, version=1), Changes(refunded_minor=400)
    )
    assert (one.refunded_minor, one.version, one.state) == (400, 2, TxState.CAPTURED)
    with pytest.raises(CasFailed):
        await store.compare_and_set(tx.id, Expect(version=1), Changes(refunded_minor=999))
    two = await store.compare_and_set(tx.id, Expect(version=2), Changes(refunded_minor=0))
    assert (two.refunded_minor, two.version) == (0, 3)


async def test_cas_on_unknown_transaction_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.transition("no-such-tx", TxState.RECEIVED, TxState.PENDING)


async def test_concurrent_cas_exactly_one_wins(store: Store, open_more) -> None:
    stores = [store, await open_more(), await open_more()]
    tx = new_tx(state=TxState.PENDING)
    await store.insert_transaction(tx)
    outcomes = (TxState.APPROVED, TxState.DECLINED, TxState.UNKNOWN, TxState.STOOD_IN)

    async def attempt(i: int) -> str:
        to = outcomes[i % len(outcomes)]
        try:
            await stores[i % len(stores)].transition(
                tx.id, TxState.PENDING, to, Changes(auth_code=f"W{i:03d}")
            )
        except CasFailed as exc:
            assert exc.current.state is not TxState.PENDING
            return "lost"
        return f"W{i:03d}"

    results = await asyncio.gather(*(attempt(i) for i in range(60)))
    winners = [r for r in results if r != "lost"]
    assert len(winners) == 1
    final = await store.get_transaction(tx.id)
    assert final.auth_code == winners[0] and final.version == 2


async def test_concurrent_increments_by_cas_lose_nothing(store: Store, open_more) -> None:
    """Refund reservations retry on CasFailed: no increment may be lost or doubled."""
    stores = [store, await open_more()]
    tx = new_tx(state=TxState.CAPTURED, captured_minor=10_000)
    await store.insert_transaction(tx)

    async def reserve(i: int) -> None:
        s = stores[i % len(stores)]
        current = await s.get_transaction(tx.id)
        while True:
            try:
                await s.compare_and_set(
                    tx.id,
                    Expect(refunded_minor=current.refunded_minor),
                    Changes(refunded_minor=current.refunded_minor + 10),
                )
                return
            except CasFailed as exc:
                current = exc.current

    await asyncio.gather(*(reserve(i) for i in range(20)))
    final = await store.get_transaction(tx.id)
    assert (final.refunded_minor, final.version) == (200, 21)


async def test_transactions_in_state_older_than(store: Store) -> None:
    stuck = [new_tx(state=TxState.UNKNOWN, deadline_at=NOW - d) for d in (5, 50, 20, 1)]
    fresh = new_tx(state=TxState.UNKNOWN, deadline_at=NOW + 5)
    at_edge = new_tx(state=TxState.UNKNOWN, deadline_at=NOW)  # not strictly before
    other = new_tx(state=TxState.PENDING, deadline_at=NOW - 100)
    for tx in [*stuck, fresh, at_edge, other]:
        await store.insert_transaction(tx)
    got = await store.transactions_in_state(TxState.UNKNOWN, older_than=NOW)
    assert [t.id for t in got] == [t.id for t in sorted(stuck, key=lambda t: t.deadline_at)]
    assert got[0] == stuck[1]
    two = await store.transactions_in_state(TxState.UNKNOWN, older_than=NOW, limit=2)
    assert [t.id for t in two] == [stuck[1].id, stuck[2].id]
    assert await store.transactions_in_state(TxState.REVERSAL_PENDING, older_than=NOW) == []
    pending = await store.transactions_in_state(TxState.PENDING, older_than=NOW)
    assert [t.id for t in pending] == [other.id]


async def test_transactions_in_state_in_pages_after_a_position(store: Store) -> None:
    """Pages (issue 17: a day read without holding it): ``after`` the last of the previous
    page, ties on deadline_at broken by id, across deadline buckets."""
    txs = [new_tx(state=TxState.UNKNOWN, deadline_at=NOW - 200 + (n // 3) * 70) for n in range(9)]
    for tx in txs:
        await store.insert_transaction(tx)
    want = [t.id for t in sorted(txs, key=lambda t: (t.deadline_at, t.id))]
    got: list[str] = []
    after: tuple[float, str] | None = None
    for _page in range(10):
        page = await store.transactions_in_state(TxState.UNKNOWN, NOW + 1000, 2, after)
        got += [t.id for t in page]
        if len(page) < 2:
            break
        after = (page[-1].deadline_at, page[-1].id)
    assert got == want


async def test_recovery_sees_state_changes(store: Store) -> None:
    tx = new_tx(state=TxState.UNKNOWN, deadline_at=NOW - 10)
    await store.insert_transaction(tx)
    await store.transition(tx.id, TxState.UNKNOWN, TxState.REVERSAL_PENDING)
    assert await store.transactions_in_state(TxState.UNKNOWN, older_than=NOW) == []
    pending = await store.transactions_in_state(TxState.REVERSAL_PENDING, older_than=NOW)
    assert [t.id for t in pending] == [tx.id]


async def test_refunds_of(store: Store) -> None:
    sale = new_tx(state=TxState.CAPTURED, captured_minor=1234)
    other_sale = new_tx(state=TxState.CAPTURED, captured_minor=1234)
    late = new_tx(type=TxType.REFUND, original_id=sale.id, created_at=NOW + 20, amount_minor=4)
    early = new_tx(type=TxType.REFUND, original_id=sale.id, created_at=NOW + 10, amount_minor=3)
    unrelated = new_tx(type=TxType.REFUND, original_id=other_sale.id)
    for tx in (sale, other_sale, late, early, unrelated):
        await store.insert_transaction(tx)
    assert await store.refunds_of(sale.id) == [early, late]
    assert await store.refunds_of(other_sale.id) == [unrelated]
    assert await store.refunds_of(early.id) == []
    assert await store.refunds_of("") == []


async def test_store_refuses_calls_when_closed(store_url: str) -> None:
    from switch.store import open_store

    s = open_store(store_url)
    await s.open()
    await s.close()
    with pytest.raises(StoreUnavailable):
        await s.get_transaction("tx-any")
