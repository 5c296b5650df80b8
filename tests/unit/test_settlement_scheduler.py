"""The cut-off scheduler: the timer fires a run at the cut-off, one process per lease, and a
run with nothing to clear writes an empty file per acquirer. A real SQLite store; the
acquirers' Settle is not reached because the topology here has none."""

import asyncio
import datetime as dt
import time

from payswitch.world.topology import parse
from switch.backoffice.settlement.scheduler import CutoffScheduler
from switch.domain.batches import BatchItem, BatchState, ItemKind
from switch.store import open_store


def _topology(tmp_path, cutoff: str):
    return parse(
        {
            "settlement": {"cutoff": cutoff, "dir": str(tmp_path / "settle")},
            "merchants": [{"id": "M", "mcc": "5411", "acquirers": []}],
            "terminals": [{"id": "T-1", "merchant": "M"}],
        }
    )


async def test_the_timer_runs_a_cutoff_and_closes_non_empty_batches(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    await store.open()
    try:
        await store.join_batch("T-1", BatchItem("tx1", ItemKind.VOID, 5, "EUR", "visa", 0), 0)
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
        topo = _topology(tmp_path, soon.strftime("%H:%M:%S"))
        sched = CutoffScheduler(store, topo)
        sched.start()
        deadline = time.monotonic() + 10
        while sched.last is None:
            assert time.monotonic() < deadline, "the cut-off did not run"
            await asyncio.sleep(0.05)
        await sched.close()
        assert [c.batch_no for c in sched.last.closed] == [1]
        log = await store.batches_of("T-1")
        assert [(b.batch_no, b.state) for b in log] == [(1, BatchState.CLEARED)]
        assert await store.open_batch_no("T-1", time.time()) == 2
    finally:
        await store.close()


async def test_one_process_per_lease_and_empty_batches_stay_open(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    a, b = open_store(url), open_store(url)
    await a.open()
    await b.open()
    try:
        topo = _topology(tmp_path, "03:00")
        first, second = CutoffScheduler(a, topo), CutoffScheduler(b, topo)
        result = await first.run_once()
        assert result is not None and result.closed == []  # nothing to close
        assert await second.run_once() is None  # the lease is the first one's
        assert await first.run_once() is not None  # its holder runs again
        assert await a.open_batch_no("T-1", time.time()) == 1
    finally:
        await a.close()
        await b.close()
