"""Bulk load: a page of transactions or batch items written as they are, for a generated day.

The live system writes a transaction through its state machine, one compare-and-set at a time;
a volume benchmark (``benchmarks/day``) needs a million of them in minutes, already in the state
the live system would leave them in at the cut-off. These methods write a page at once and are
idempotent (an id already there is left as it is), so a generator that crashed is simply run
again. They are for loading an empty or generated store only: they check every row as
``insert_transaction`` does (``check_new``) but take the state as given, so the caller answers
for a state the live machine could reach. SQLite writes a page in one transaction
(executemany, ``INSERT OR IGNORE``); Cassandra writes its rows concurrently with plain writes
at the lowest write timestamp (``USING TIMESTAMP 1``), so any live write, lightweight
transactions included, wins over an imported cell and a rerun changes nothing that moved.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from switch.domain.batches import BatchItem
from switch.domain.transactions import Transaction


class ImportStore(abc.ABC):
    """Bulk load of generated days (benchmarks, crash tests): never used by the live switch."""

    @abc.abstractmethod
    async def import_transactions(self, txs: Sequence[Transaction]) -> None:
        """Write ``txs`` as they are (any state, with their lookups: by state, refunds by
        original, the duplicate-transmission key); a transaction stored already keeps what it
        holds (a rerun never undoes a later change). ValueError, nothing written, for a row
        ``insert_transaction`` would refuse."""

    @abc.abstractmethod
    async def import_batch_items(self, items: Sequence[tuple[str, BatchItem]]) -> None:
        """Join each (terminal_id, item) to the terminal's open batch (opening batch 1), as
        ``join_batch`` would; a transaction already in a batch stays where it is. ValueError,
        nothing written, for an item ``join_batch`` would refuse."""
