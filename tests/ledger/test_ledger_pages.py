"""The Ledger's pages (issue 17): hooks post at once until the caller first flushes, then
buffer a bounded page posted with one store call; a crash between pages loses no durable
posting and a rerun posts nothing twice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ledgerkit import captured

from switch.backoffice.ledger import Ledger
from switch.store import open_store
from switch.store.base import Store


async def test_a_ledger_never_flushed_posts_each_hook_at_once(store: Store) -> None:
    ledger = Ledger(store)
    tx = await captured(store)
    await ledger.on_presented(tx)
    assert await store.ledger_get(f"{tx.id}/CAPTURE_PRESENTED/0") is not None


async def test_after_a_flush_hooks_buffer_a_bounded_page(store: Store) -> None:
    ledger = Ledger(store, page_size=3)
    await ledger.flush()
    sales = [await captured(store) for _ in range(4)]
    for tx in sales[:2]:
        await ledger.on_presented(tx)
    assert await store.ledger_get(f"{sales[0].id}/CAPTURE_PRESENTED/0") is None
    await ledger.on_presented(sales[2])  # the page is full: posted
    assert await store.ledger_get(f"{sales[2].id}/CAPTURE_PRESENTED/0") is not None
    await ledger.on_presented(sales[3])
    assert await store.ledger_get(f"{sales[3].id}/CAPTURE_PRESENTED/0") is None
    await ledger.flush()
    assert await store.ledger_get(f"{sales[3].id}/CAPTURE_PRESENTED/0") is not None
    assert (await Ledger(store).trial_balance("EUR")).total == 0


_CHILD = """
import asyncio, sys
sys.path.insert(0, sys.argv[2])
from ledgerkit import new_tx
from switch.backoffice.ledger import Ledger
from switch.domain.transactions import TxState
from switch.store import open_store

async def main() -> None:
    async with open_store(sys.argv[1]) as store:
        ledger = Ledger(store, page_size=4)
        await ledger.flush()
        for n in range(10):
            tx = new_tx(id=f"crash-{n}", rrn=f"9{n:011d}", state=TxState.CAPTURED,
                        captured_minor=1000 + n)
            await ledger.on_presented(tx, None)
            await ledger.on_settled(tx, None)
        await ledger.flush()

asyncio.run(main())
"""


def _child(url: str, crash_at: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "PAYSWITCH_CRASH_AT"}
    if crash_at:
        env["PAYSWITCH_CRASH_AT"] = crash_at
    here = str(Path(__file__).parent)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, url, here], env=env, timeout=60, check=False
    )
    return done.returncode


async def test_a_crash_between_pages_then_a_rerun_posts_every_event_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/crash.db"
    assert _child(url, "ledger.posting:2") == -9  # SIGKILL after the second page
    async with open_store(url) as store:
        posted = {e.posting_id for e in await store.ledger_entries("EUR")}
        assert len(posted) == 8  # two pages of four postings were durable
    assert _child(url, None) == 0
    ref = f"sqlite:///{tmp_path}/ref.db"
    assert _child(ref, None) == 0
    async with open_store(url) as store, open_store(ref) as clean:
        got = await Ledger(store).trial_balance("EUR")
        want = await Ledger(clean).trial_balance("EUR")
        assert got == want and got.total == 0
        ids = {e.posting_id for e in await store.ledger_entries("EUR")}
        assert len(ids) == 20
