"""Child process of the refund crash test: runs the refund's first writes
(``switch.recovery.refund_reservations.begin_refund``) on a captured sale and SIGKILLs itself at the
first write after the reservation (RECEIVED -> PENDING), with nothing closed or flushed.

usage: python refund_crash_child.py STORE_URL STAN
prints: <original id> <refund id>
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
import time

from storekit import new_tx

from switch.domain.transactions import Changes, TxState, TxType
from switch.recovery.refund_reservations import begin_refund
from switch.store import open_store


async def main(url: str, stan: int) -> None:
    store = open_store(url)
    await store.open()
    sale = new_tx(stan=stan, acquirer_id="ACQ1", amount_minor=5_000)
    await store.insert_transaction(sale)
    await store.transition(sale.id, TxState.RECEIVED, TxState.PENDING)
    await store.transition(sale.id, TxState.PENDING, TxState.APPROVED)
    await store.transition(
        sale.id, TxState.APPROVED, TxState.CAPTURED, Changes(captured_minor=5_000)
    )
    now = time.time()
    refund = dataclasses.replace(
        new_tx(stan=stan + 1, acquirer_id="ACQ1", amount_minor=2_000),
        type=TxType.REFUND,
        original_id=sale.id,
        created_at=now,
        updated_at=now,
        deadline_at=now + 2.0,
    )
    sys.stdout.write(f"{sale.id} {refund.id}\n")
    sys.stdout.flush()
    real = store.transition

    async def crash_after_reserving(tx_id, from_state, to_state, changes=None):
        if (from_state, to_state) == (TxState.RECEIVED, TxState.PENDING):
            os.kill(os.getpid(), signal.SIGKILL)
        return await real(tx_id, from_state, to_state, changes)

    store.transition = crash_after_reserving  # type: ignore[method-assign]
    await begin_refund(store, refund)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
