"""Contract: sequences, persistence across close/reopen, committed writes surviving kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from storekit import NOW, new_tx

from switch.domain.idempotency import IdemStatus
from switch.domain.transactions import Changes, TxState
from switch.store import open_store
from switch.store.base import Store

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parents[1]


async def test_next_sequence_starts_at_one_and_increases(store: Store) -> None:
    assert [await store.next_sequence("rrn") for _ in range(5)] == [1, 2, 3, 4, 5]
    assert await store.next_sequence("stan") == 1  # names are independent
    assert await store.next_sequence("rrn") == 6


async def test_next_sequence_under_concurrency(store: Store, open_more) -> None:
    stores = [store, await open_more(), await open_more()]

    async def take(s: Store, n: int) -> list[int]:
        return [await s.next_sequence("rrn") for _ in range(n)]

    async def burst(s: Store, n: int) -> list[int]:
        return list(await asyncio.gather(*(s.next_sequence("rrn") for _ in range(n))))

    runs = await asyncio.gather(*(take(s, 15) for s in stores), *(burst(s, 15) for s in stores))
    for run in runs[: len(stores)]:  # each caller sees its own numbers strictly increase
        assert run == sorted(run) and len(set(run)) == len(run)
    values = [v for run in runs for v in run]
    assert len(set(values)) == len(values) == 90  # nobody got a number twice
    assert await store.next_sequence("rrn") > max(values)


async def test_everything_persists_across_close_and_reopen(store_url: str) -> None:
    tx = new_tx()
    async with open_store(store_url) as first:
        await first.claim_idempotency("T1", "k1", "authorize", "fp", 3600.0, NOW)
        await first.insert_transaction(tx)
        await first.transition(tx.id, TxState.RECEIVED, TxState.PENDING)
        moved = await first.transition(
            tx.id, TxState.PENDING, TxState.APPROVED, Changes(auth_code="X")
        )
        await first.complete_idempotency("T1", "k1", b"\x00answer", tx.id)
        seq = await first.next_sequence("rrn")
    async with open_store(store_url) as second:  # schema applied again: idempotent
        assert await second.get_transaction(tx.id) == moved
        record = await second.get_idempotency("T1", "k1", NOW)
        assert record is not None and record.response == b"\x00answer"
        assert await second.next_sequence("rrn") == seq + 1
        assert not (await second.claim_idempotency("T1", "k1", "authorize", "fp", 1, NOW)).claimed


async def test_committed_writes_survive_kill_9(store_url: str) -> None:
    """The switch writes its intent before it calls out: once a write has returned, a crash
    of the process must not lose it (nothing may be buffered in the process)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(_REPO), str(_HERE)])}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(_HERE / "crash_child.py"),
        store_url,
        "424242",
        cwd=_REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), timeout=30)
    assert child.returncode == -signal.SIGKILL, err.decode()
    tx_id, seq = out.decode().split()
    async with open_store(store_url) as after:
        tx = await after.get_transaction(tx_id)
        assert tx is not None and tx.state is TxState.PENDING and tx.acquirer_id == "ACQ1"
        record = await after.get_idempotency(tx.terminal_id, "crash-key", NOW)
        assert record is not None and record.status is IdemStatus.COMPLETED
        assert (record.response, record.transaction_id) == (b"answer", tx_id)
        assert await after.next_sequence("crash") == int(seq) + 1
