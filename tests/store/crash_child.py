"""Child process of the crash test: writes through the store, prints what it wrote, then
SIGKILLs itself the moment the last write has returned (no close, no atexit, no flush).

usage: python crash_child.py STORE_URL STAN
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from storekit import NOW, new_tx

from switch.domain.transactions import Changes, TxState
from switch.store import open_store


async def main(url: str, stan: int) -> None:
    store = open_store(url)
    await store.open()
    tx = new_tx(stan=stan)
    await store.claim_idempotency(tx.terminal_id, "crash-key", "authorize", "fp", 3600.0, NOW)
    await store.insert_transaction(tx)
    await store.attach_transaction(tx.terminal_id, "crash-key", tx.id)
    await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING, Changes(acquirer_id="ACQ1"))
    seq = await store.next_sequence("crash")
    await store.complete_idempotency(tx.terminal_id, "crash-key", b"answer", tx.id)
    sys.stdout.write(f"{tx.id} {seq}\n")
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
