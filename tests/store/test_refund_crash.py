"""A refund whose process is killed (kill -9, a real child process) right after it reserved
its amount on the original: the refund is stored (RECEIVED) and owns the reservation, so the
recovery sweep finds it once dead and releases the reservation; the full amount can then be
refunded again. Both backends (no store change: the order of the writes and the sweep)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from switch.domain.transactions import TxState
from switch.recovery.refund_reservations import ORPHAN_AFTER_S, release_orphans, reserve
from switch.store import open_store

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parents[1]


async def _crash(store_url: str) -> tuple[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(_REPO), str(_HERE)])}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(_HERE / "refund_crash_child.py"),
        store_url,
        "515151",
        cwd=_REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == -signal.SIGKILL, err.decode()
    original_id, refund_id = out.decode().split()
    return original_id, refund_id


async def test_a_refund_killed_after_reserving_is_released_by_recovery(store_url: str) -> None:
    original_id, refund_id = await _crash(store_url)
    async with open_store(store_url) as store:
        original = await store.get_transaction(original_id)
        refund = await store.get_transaction(refund_id)
        assert (original.captured_minor, original.refunded_minor) == (5_000, 2_000)
        assert refund.state is TxState.RECEIVED and refund.original_id == original_id
        # While the request could still be alive, recovery leaves it alone.
        assert await release_orphans(store, now=refund.deadline_at + 1) == 0
        assert (await store.get_transaction(original_id)).refunded_minor == 2_000
        # Dead: the reservation is released and the refund declined (96), once.
        dead_at = refund.deadline_at + ORPHAN_AFTER_S + 1
        assert await release_orphans(store, now=dead_at) == 1
        assert (await store.get_transaction(original_id)).refunded_minor == 0
        declined = await store.get_transaction(refund_id)
        assert (declined.state, declined.response_code) == (TxState.DECLINED, "96")
        assert await release_orphans(store, now=dead_at) == 0
        # The whole capture is refundable again.
        assert await reserve(store, original_id, 5_000)
        assert (await store.get_transaction(original_id)).refunded_minor == 5_000
