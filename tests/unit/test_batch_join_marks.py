"""The join hook: a capture or refund whose batch join fails is marked unbatched for the
cut-off's sweep (issue 17: the sweep reads only the marks); a void is not (no money to clear);
a mark that fails too is logged for the operator and the operation still succeeds. A fake
store (unit test): the real stores' marks are in tests/store/test_batch_sweep.py."""

from __future__ import annotations

from types import SimpleNamespace

from storekit_path import new_tx

from switch.backoffice.batches.join import join
from switch.domain.batches import ItemKind
from switch.domain.errors import StoreUnavailable
from switch.domain.transactions import TxState


class FlakyStore:
    def __init__(self, *, mark_fails: bool = False) -> None:
        self.marks: list[tuple[str, str, ItemKind]] = []
        self.mark_fails = mark_fails

    async def join_batch(self, terminal_id, item, now):
        raise StoreUnavailable("disk full")

    async def mark_unbatched(self, terminal_id, transaction_id, kind, now):
        if self.mark_fails:
            raise StoreUnavailable("still full")
        self.marks.append((terminal_id, transaction_id, kind))


async def test_a_failed_join_of_a_capture_or_refund_is_marked() -> None:
    store = FlakyStore()
    svc = SimpleNamespace(store=store)
    sale = new_tx(state=TxState.CAPTURED, captured_minor=500)
    refund = new_tx(state=TxState.APPROVED)
    assert await join(svc, sale, ItemKind.SALE) is None
    assert await join(svc, refund, ItemKind.REFUND) is None
    assert await join(svc, new_tx(state=TxState.VOIDED), ItemKind.VOID) is None
    assert store.marks == [
        (sale.terminal_id, sale.id, ItemKind.SALE),
        (refund.terminal_id, refund.id, ItemKind.REFUND),
    ]


async def test_a_mark_that_fails_too_does_not_fail_the_operation() -> None:
    store = FlakyStore(mark_fails=True)
    sale = new_tx(state=TxState.CAPTURED, captured_minor=500)
    assert await join(SimpleNamespace(store=store), sale, ItemKind.SALE) is None
    assert store.marks == []
