"""Stateful property test: idempotency keys as the switch uses them, on every backend.

Requests claim keys on two connections (as two switch processes would), attach their
transaction, complete with their answer, give the key back, or die holding it (an abandoned
hold); retries come with the same content or other content; a later retry settles an abandoned
key (``IdempotencyGuard``'s ``abandoned_after_s``); the clock moves past TTLs; several requests
race for one key at once. A model of each key's record predicts every answer.

Invariants: at most one holder per key (a claim succeeds only when the model has no live
record; of racing claims exactly one wins and every loser is shown the winner's record); a
completed key always replays its first answer (its response and transaction, whatever comes
after, until it expires); a retry with other content is always shown the first claim's
content, so the switch refuses it; a release never drops a completed answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from stateful_kit import Driver, run_id, run_machine, tally
from storekit import NOW, new_tx

from switch.domain.errors import NotFound, StoreError
from switch.domain.idempotency import Answer, Claim, IdempotencyRecord, IdemStatus
from switch.domain.transactions import Changes, TxState
from switch.store.base import Store

KEYS = ["k1", "k2", "k3"]
# A request's content as the guard compares it: (operation, fingerprint).
CONTENTS = [("authorize", "fp-a"), ("authorize", "fp-b"), ("refund", "fp-a")]
TTLS = [30.0, 86_400.0]  # one that expires within a run, and the switch's 24 h
ABANDONED_AFTER_S = 60.0  # as IdempotencyGuard's default: a hold this old is dead
BUDGET_S = 2.0  # no request runs longer


@dataclasses.dataclass
class Hold:
    """A request that claimed a key and has not settled it yet."""

    key: str
    gen: int  # which claim of the key it holds
    conn: int  # the connection (switch process) it runs on
    content: tuple[str, str]
    since: float  # when it claimed


class IdempotencyMachine(RuleBasedStateMachine):
    driver: Driver

    def __init__(self) -> None:
        super().__init__()
        tally("examples")
        self.scope = f"T{run_id()}"
        self.now = NOW
        self.records: dict[str, IdempotencyRecord] = {}  # the model: each key's record
        self.gens: dict[str, int] = {}  # the claim that made each record
        self.first_answer: dict[tuple[str, int], tuple[bytes, str]] = {}
        self.holds: list[Hold] = []  # live requests holding a key
        self.dead: list[Hold] = []  # requests that died holding one
        self.claims = 0

    # --- helpers ------------------------------------------------------------------------
    def store(self, conn: int) -> Store:
        return self.driver.stores[conn % len(self.driver.stores)]

    def call(self, coro: Awaitable[Any]) -> Any:
        async def wrap() -> Any:
            return await coro

        tally("store calls")
        return self.driver.run(wrap())

    def live(self, key: str) -> IdempotencyRecord | None:
        """The model's record of ``key`` as a get or claim at ``now`` must see it."""
        r = self.records.get(key)
        return r if r is not None and r.expires_at > self.now else None

    def holder_of(self, key: str) -> Hold | None:
        live = self.live(key)
        if live is None or live.status is not IdemStatus.IN_FLIGHT:
            return None
        return next((h for h in self.holds if h.key == key and h.gen == self.gens[key]), None)

    def expect_claim(self, key: str, content: tuple[str, str], ttl: float) -> Claim:
        live = self.live(key)
        if live is not None:
            return Claim(False, live)
        op, fp = content
        return Claim(
            True,
            IdempotencyRecord(
                self.scope, key, op, fp, IdemStatus.IN_FLIGHT, self.now, self.now + ttl
            ),
        )

    def took(self, key: str, claim: Claim, conn: int, content: tuple[str, str]) -> None:
        """A claim the store granted: the model's record, and a new holder."""
        self.claims += 1
        self.records[key] = claim.record
        self.gens[key] = self.claims
        self.holds.append(Hold(key, self.claims, conn, content, self.now))

    def mine(self, hold: Hold) -> bool:
        """The hold's claim is still the key's record (not released, replaced or expired)."""
        live = self.live(hold.key)
        return live is not None and self.gens.get(hold.key) == hold.gen

    # --- rules --------------------------------------------------------------------------
    @rule(
        key=st.sampled_from(KEYS),
        content=st.sampled_from(CONTENTS),
        ttl=st.sampled_from(TTLS),
        conn=st.integers(0, 1),
    )
    def claim(self, key: str, content: tuple[str, str], ttl: float, conn: int) -> None:
        """A request (new or a retry) claims the key: it becomes the holder, or is shown the
        live record, which decides replay (same content, completed), wait (same content, in
        flight) or refusal (other content)."""
        expected = self.expect_claim(key, content, ttl)
        got = self.call(
            self.store(conn).claim_idempotency(self.scope, key, *content, ttl, self.now)
        )
        assert got == expected, (got, expected)
        if got.claimed:
            assert self.holder_of(key) is None  # at most one holder
            self.took(key, got, conn, content)
            tally("claim: took the key")
            return
        record = got.record
        if (record.operation, record.fingerprint) != content:
            tally("claim: other content, refused")
        elif record.status is IdemStatus.COMPLETED:
            first = self.first_answer[(key, self.gens[key])]
            assert (record.response, record.transaction_id) == first  # the first answer
            tally("claim: replayed")
        else:
            tally("claim: in flight, wait")

    @rule(key=st.sampled_from(KEYS), conn=st.integers(0, 1))
    def retry(self, key: str, conn: int) -> None:
        """A retry with the very content of the key's live claim: it waits while the claim
        is in flight and replays the first answer once it is completed."""
        live = self.live(key)
        if live is None:
            return
        self.claim(key, (live.operation, live.fingerprint), TTLS[0], conn)

    @rule(key=st.sampled_from(KEYS), conn=st.integers(0, 1))
    def get(self, key: str, conn: int) -> None:
        assert self.call(self.store(conn).get_idempotency(self.scope, key, self.now)) == self.live(
            key
        )

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), tx=st.sampled_from(["tx-1", "tx-2"]))
    def attach(self, data: st.DataObject, tx: str) -> None:
        """The holder names the transaction it created."""
        hold = data.draw(st.sampled_from(self.holds))
        assert self.mine(hold)
        self.call(self.store(hold.conn).attach_transaction(self.scope, hold.key, tx))
        self.records[hold.key] = dataclasses.replace(self.records[hold.key], transaction_id=tx)
        tally("holder attached")
        self.check(hold.key)

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), answer=st.binary(min_size=1, max_size=40))
    def complete(self, data: st.DataObject, answer: bytes) -> None:
        """The holder answers: the key is COMPLETED with that answer, once."""
        hold = data.draw(st.sampled_from(self.holds))
        self.holds.remove(hold)
        assert self.mine(hold)
        record = self.records[hold.key]
        tx = record.transaction_id or "tx-0"
        self.call(self.store(hold.conn).complete_idempotency(self.scope, hold.key, answer, tx))
        self.records[hold.key] = dataclasses.replace(
            record, status=IdemStatus.COMPLETED, response=answer, transaction_id=tx
        )
        self.first_answer[(hold.key, hold.gen)] = (answer, tx)
        tally("holder completed")
        self.check(hold.key)

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        """The holder's request ended without effect: it gives the key back."""
        hold = data.draw(st.sampled_from(self.holds))
        self.holds.remove(hold)
        assert self.mine(hold)
        self.call(self.store(hold.conn).release_idempotency(self.scope, hold.key))
        del self.records[hold.key]
        tally("holder released")
        self.check(hold.key)

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def die(self, data: st.DataObject) -> None:
        """The holder's process dies: the key stays IN_FLIGHT, an abandoned hold."""
        hold = data.draw(st.sampled_from(self.holds))
        self.holds.remove(hold)
        self.dead.append(hold)
        tally("holder died")

    @rule(
        key=st.sampled_from(KEYS), conn=st.integers(0, 1), answer=st.binary(min_size=1, max_size=8)
    )
    def settle_abandoned(self, key: str, conn: int, answer: bytes) -> None:
        """A retry finds the key IN_FLIGHT past ``abandoned_after_s`` with no live holder and
        completes it itself (the guard's ``_settle_abandoned``); too young: it waits."""
        live = self.live(key)
        if live is None or live.status is not IdemStatus.IN_FLIGHT:
            return
        if self.holder_of(key) is not None:
            return  # its request is alive (a retry waits for it)
        if live.created_at + ABANDONED_AFTER_S >= live.expires_at:
            return  # a key that expires first is simply claimed afresh
        self.advance(live.created_at + ABANDONED_AFTER_S - self.now)  # the retry comes later
        record = self.call(self.store(conn).get_idempotency(self.scope, key, self.now))
        assert record == live
        self.call(
            self.store(conn).complete_idempotency(self.scope, key, answer, record.transaction_id)
        )
        self.records[key] = dataclasses.replace(live, status=IdemStatus.COMPLETED, response=answer)
        self.first_answer[(key, self.gens[key])] = (answer, record.transaction_id)
        tally("abandoned key settled")
        self.check(key)

    @precondition(lambda self: self.dead)
    @rule(data=st.data(), answer=st.binary(min_size=1, max_size=8))
    def stalled_holder_resumes(self, data: st.DataObject, answer: bytes) -> None:
        """A holder taken for dead was only stalled (a paused process) and resumes: it may
        finish while its claim is still in flight, but once a retry settled the key, or the
        key was given back, it cannot attach or complete: the first answer stands."""
        hold = data.draw(st.sampled_from(self.dead))
        self.dead.remove(hold)
        live = self.live(hold.key)
        if live is None and hold.key in self.records:
            return  # expired: past a 24 h TTL, which no stall outlives
        if live is not None and self.gens[hold.key] != hold.gen:
            return  # claimed afresh after expiry: likewise
        ours = live is not None and live.status is IdemStatus.IN_FLIGHT
        for write in (
            self.store(hold.conn).attach_transaction(self.scope, hold.key, "tx-stalled"),
            self.store(hold.conn).complete_idempotency(self.scope, hold.key, answer, "tx-stalled"),
        ):
            try:
                self.call(write)
            except NotFound:
                assert not ours
                continue
            assert ours
            if live is not None and live.status is IdemStatus.IN_FLIGHT:
                live = dataclasses.replace(live, transaction_id="tx-stalled")
        if ours:
            assert live is not None
            done = dataclasses.replace(live, status=IdemStatus.COMPLETED, response=answer)
            self.records[hold.key] = done
            self.first_answer[(hold.key, hold.gen)] = (answer, "tx-stalled")
        tally(f"stalled holder resumes: {'finishes' if ours else 'refused'}")
        self.check(hold.key)

    @rule(key=st.sampled_from(KEYS), conn=st.integers(0, 1))
    def release_by_other(self, key: str, conn: int) -> None:
        """A release of a key nobody holds in flight (a late or repeated give-back): a
        completed answer is never dropped, a missing key is quiet. (Whose in-flight claim a
        release may drop is the holder's business: Cassandra drops only the caller's own.)"""
        record = self.live(key)
        if record is not None and record.status is IdemStatus.IN_FLIGHT:
            return
        self.call(self.store(conn).release_idempotency(self.scope, key))
        tally(f"release by another: {record.status if record else None}")
        self.check(key)

    @rule(key=st.sampled_from(KEYS), tx=st.sampled_from(["tx-1", "tx-9"]))
    def unknown_key(self, key: str, tx: str) -> None:
        """Attaching or completing a key that has no record is NotFound and writes nothing."""
        if key in self.records:
            return
        for call in (
            self.store(0).attach_transaction(self.scope, key, tx),
            self.store(1).complete_idempotency(self.scope, key, b"x", tx),
        ):
            try:
                self.call(call)
            except NotFound:
                continue
            raise AssertionError("an unknown key was written")
        tally("unknown key: not found")
        assert self.call(self.store(0).get_idempotency(self.scope, key, self.now)) is None

    @rule(seconds=st.sampled_from([0.5, 29.0, 61.0, 650.0]))
    def tick(self, seconds: float) -> None:
        """The clock moves on. No request runs longer than its 2 s budget: past that, every
        holder has ended, and one that had not settled its key died holding it."""
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Move the clock; a holder older than a request's budget has died holding its key."""
        self.now += max(seconds, 0.0)
        over = [h for h in self.holds if self.now - h.since > BUDGET_S]
        self.dead.extend(over)
        self.holds = [h for h in self.holds if h not in over]

    @rule(key=st.sampled_from(KEYS), n=st.integers(2, 6), ttl=st.sampled_from(TTLS))
    def race(self, key: str, n: int, ttl: float) -> None:
        """Several requests claim one key at once on both connections: if the key is free,
        exactly one holds it and all the others see its claim; else all see the record."""
        before = self.live(key)
        contents = [CONTENTS[i % len(CONTENTS)] for i in range(n)]

        async def all_claims() -> list[Claim]:
            return list(
                await asyncio.gather(
                    *(
                        self.store(i).claim_idempotency(self.scope, key, *c, ttl, self.now)
                        for i, c in enumerate(contents)
                    )
                )
            )

        claims = self.call(all_claims())
        tally("race: key free" if before is None else "race: key taken")
        winners = [i for i, c in enumerate(claims) if c.claimed]
        if before is not None:
            assert not winners
            assert all(c.record == before for c in claims)
            return
        assert len(winners) == 1, claims
        w = winners[0]
        assert all(c.record == claims[w].record for c in claims)
        assert claims[w] == self.expect_claim(key, contents[w], ttl)
        self.took(key, claims[w], w, contents[w])

    # --- invariants ---------------------------------------------------------------------
    def check(self, key: str) -> None:
        got = self.call(self.store(0).get_idempotency(self.scope, key, self.now))
        assert got == self.live(key), (got, self.live(key))
        if got is not None and got.status is IdemStatus.COMPLETED:
            assert (got.response, got.transaction_id) == self.first_answer[(key, self.gens[key])]

    @invariant()
    def holders(self) -> None:
        for key in KEYS:
            live = [h for h in self.holds if self.mine(h) and h.key == key]
            assert len(live) <= 1

    def teardown(self) -> None:
        for key in KEYS:
            self.check(key)


def test_idempotency_keys(store_url: str) -> None:
    driver = Driver(store_url, connections=2)
    try:
        run_machine(IdempotencyMachine, driver)
    finally:
        driver.close()


async def test_a_late_holder_cannot_replace_the_first_answer(store: Store, open_more) -> None:
    """Found by the machine: a holder that resumed after a retry had settled its abandoned
    key (a paused process) attached its transaction and replaced the answer (both stores); a
    terminal told 96 "retry under a new key" could then be charged by the late request too.
    The first answer now stands: attach and complete need the key IN_FLIGHT."""
    other = await open_more()
    await store.claim_idempotency("T1", "k1", "authorize", "fp", 86_400.0, NOW)
    await other.complete_idempotency("T1", "k1", b"96 ended without effect", "")
    with pytest.raises(NotFound):
        await store.attach_transaction("T1", "k1", "tx-late")
    with pytest.raises(NotFound):
        await store.complete_idempotency("T1", "k1", b"00 approved", "tx-late")
    record = await other.get_idempotency("T1", "k1", NOW + 61)
    assert record is not None
    assert (record.status, record.response, record.transaction_id) == (
        IdemStatus.COMPLETED,
        b"96 ended without effect",
        "",
    )
    tx = new_tx(state=TxState.PENDING, idempotency_key="k1", terminal_id="T1")
    await store.insert_transaction(tx)
    answer = Answer("T1", "k1", b"00 approved")
    recorded = await store.record_with_answer(
        tx.id, TxState.PENDING, TxState.APPROVED, Changes(response_code="00"), answer
    )
    assert recorded.tx.state is TxState.APPROVED and not recorded.answered
    record = await store.get_idempotency("T1", "k1", NOW + 61)
    assert record is not None and record.response == b"96 ended without effect"
    late = new_tx(terminal_id="T1", idempotency_key="k1")  # the late request's intent
    with pytest.raises(StoreError):
        await store.receive_with_intent(
            late, vault=None, attach=("T1", "k1"), acquirer_id="ACQ1", now=NOW + 61
        )
    row = await store.get_transaction(late.id)
    assert row is None or row.state is TxState.RECEIVED  # never PENDING: nothing is sent
