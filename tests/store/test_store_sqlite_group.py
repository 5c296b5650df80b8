"""SQLite group commit (``switch.store.sqlite.group``): writes queued while the store thread
is busy share one transaction and one COMMIT; each is answered only after that COMMIT, and
one that fails is rolled back alone, as its own transaction would have been.

The store thread is held by a job waiting on an event while the writes queue behind it; the
release is a task created after theirs, so it runs once each has queued (asyncio runs ready
tasks in order): no sleep, no timing."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from storekit import NOW, new_tx

from switch.domain.errors import StoreUnavailable
from switch.domain.transactions import Changes, DuplicateTransmission, TxState
from switch.domain.vault import VaultWrite
from switch.store.sqlite.store import SqliteStore

TTL = 86_400.0


async def _queued_together(store: SqliteStore, calls: list[Awaitable[Any]]) -> list[Any]:
    """Run ``calls`` while the store thread is held, so that they queue as one batch; their
    results (or exceptions), and the statements the store ran meanwhile."""
    gate = threading.Event()
    held = asyncio.ensure_future(store._call(lambda conn: gate.wait(30)))
    tasks = [asyncio.ensure_future(c) for c in calls]
    release = asyncio.ensure_future(asyncio.to_thread(gate.set))
    await release
    await held
    return await asyncio.gather(*tasks, return_exceptions=True)


def _commits(statements: list[str]) -> int:
    return sum(1 for s in statements if s.strip().upper() == "COMMIT")


async def _traced(store: SqliteStore) -> list[str]:
    statements: list[str] = []
    await store._call(lambda conn: conn.set_trace_callback(statements.append))
    return statements


async def test_queued_writes_share_one_commit_and_are_durable_when_answered(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    async with SqliteStore(path) as store:
        statements = await _traced(store)
        keys = [f"k{i}" for i in range(8)]
        claims = await _queued_together(
            store, [store.claim_idempotency("T1", k, "authorize", "fp", TTL, NOW) for k in keys]
        )
        assert all(c.claimed for c in claims)
        assert _commits(statements) == 1  # eight writes, one fsync
        assert statements.count("SAVEPOINT w") == 8
        with sqlite3.connect(path) as other:  # answered: already on disk for anyone
            rows = other.execute("SELECT key FROM idempotency ORDER BY key").fetchall()
        assert [r[0] for r in rows] == keys


async def test_a_failing_write_in_a_group_is_rolled_back_alone(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db") as store:
        tx = new_tx()
        await store.insert_transaction(tx)
        first = new_tx()
        await store.insert_transaction(first)
        dup = new_tx(stan=first.stan, card_token="b" * 64)
        statements = await _traced(store)
        ok_claim, bad_cas, dup_intent, ok_cas = await _queued_together(
            store,
            [
                store.claim_idempotency("T1", "fresh", "authorize", "fp", TTL, NOW),
                # the row is RECEIVED, not PENDING: the compare-and-set fails in the group
                store.record_with_answer(tx.id, TxState.PENDING, TxState.APPROVED, Changes(), None),
                store.receive_with_intent(
                    dup,
                    vault=VaultWrite("b" * 64, b"sealed-b", 1),
                    attach=None,
                    acquirer_id="ACQ1",
                    now=NOW,
                ),
                store.record_with_answer(
                    tx.id, TxState.RECEIVED, TxState.DECLINED, Changes(), None
                ),
            ],
        )
        assert ok_claim.claimed
        assert isinstance(bad_cas, Exception)  # the CAS expected PENDING: nothing written
        assert isinstance(dup_intent, DuplicateTransmission)
        assert dup_intent.existing_id == first.id
        assert ok_cas.tx.state is TxState.DECLINED
        assert _commits(statements) == 1
        # The duplicate kept its vault entry only (as its own transaction commits it).
        assert await store.get_transaction(dup.id) is None
        assert (await store.get_vault_entry("b" * 64)) is not None
        assert (await store.get_transaction(tx.id)).state is TxState.DECLINED


async def test_an_error_that_ends_the_transaction_fails_the_whole_group(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db") as store:

        def breaks_the_transaction(conn: sqlite3.Connection) -> None:
            conn.execute("ROLLBACK")  # as SQLite does itself on some I/O errors
            raise sqlite3.OperationalError("disk I/O error")

        claim, broken = await _queued_together(
            store,
            [
                store.claim_idempotency("T1", "lost", "authorize", "fp", TTL, NOW),
                store._call_grouped(breaks_the_transaction),
            ],
        )
        assert isinstance(claim, StoreUnavailable)  # its write did not hold: never "claimed"
        assert isinstance(broken, StoreUnavailable)
        assert await store.get_idempotency("T1", "lost", NOW) is None
        # The next group starts clean.
        assert (await store.claim_idempotency("T1", "lost", "authorize", "fp", TTL, NOW)).claimed


async def test_a_cancelled_caller_does_not_cancel_its_write(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db") as store:
        gate = threading.Event()
        held = asyncio.ensure_future(store._call(lambda conn: gate.wait(30)))
        claim = asyncio.ensure_future(
            store.claim_idempotency("T1", "gone", "authorize", "fp", TTL, NOW)
        )
        await asyncio.to_thread(lambda: None)  # let the claim queue behind the held thread
        claim.cancel()
        gate.set()
        await held
        with pytest.raises(asyncio.CancelledError):
            await claim
        # Any later call queues behind the cancelled write, which ran to its end.
        record = await store.get_idempotency("T1", "gone", NOW)
        assert record is not None
