"""The recovery sweep runs in one switch process at a time: the holder of the store's
``recovery`` lease. Two reversers on one real SQLite store; the acquirer is a stub that
acknowledges every reversal (what is under test is who sweeps, not the network)."""

import time

from payswitch.v1 import common_pb2, network_pb2
from switch.domain.transactions import TxState
from switch.recovery.reversals import Reverser
from switch.store.sqlite.store import SqliteStore
from tests.store.storekit import new_tx


class _AckingAcquirer:
    def __init__(self) -> None:
        self.reversed: list[str] = []

    async def reverse(self, msg, timeout):
        self.reversed.append(msg.original_rrn)
        return network_pb2.NetworkAdviceResult(
            rrn=msg.original_rrn, response_code=common_pb2.RESPONSE_CODE_APPROVED
        )


class _Connectors:
    def __init__(self, conn) -> None:
        self._conn = conn

    def get(self, _acquirer_id):
        return self._conn


async def test_only_the_lease_holder_sweeps_and_the_crash_is_reversed(tmp_path):
    store = SqliteStore(tmp_path / "switch.db")
    await store.open()
    try:
        # A transaction left PENDING past its deadline by a crashed process.
        tx = new_tx(scheme="visa", acquirer_id="acq-alpha", deadline_at=time.time() - 5)
        await store.insert_transaction(tx)
        await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING)
        acquirer = _AckingAcquirer()
        first = Reverser(store, _Connectors(acquirer), scan_interval_s=60)
        second = Reverser(store, _Connectors(acquirer), scan_interval_s=60)

        assert await first.scan() == 1
        assert await second.scan() == 0  # the lease is first's for 3 sweep intervals
        assert await first.wait_idle(timeout=10)

        done = await store.get_transaction(tx.id)
        assert done.state is TxState.REVERSED
        assert acquirer.reversed == [tx.rrn]
        await first.close()
        await second.close()
    finally:
        await store.close()
