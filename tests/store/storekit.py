"""Shared helpers of the store contract suite (a plain module: test files and the crash
child import it by name, which a conftest cannot safely be)."""

from __future__ import annotations

import dataclasses
import itertools
import uuid

from switch.domain.transactions import Transaction, TxState, TxType

NOW = 1_800_000_000.0  # a fixed clock: expiry is tested through ``now`` arguments, never sleeps

_ids = itertools.count(1)
_RUN = uuid.uuid4().hex[:8]  # ids stay unique even in a store shared across processes


def new_tx(**changes: object) -> Transaction:
    """A valid RECEIVED authorization with a fresh id and STAN; override any field."""
    n = next(_ids)
    tx = Transaction(
        id=f"tx-{_RUN}-{n:06d}",
        type=TxType.AUTHORIZATION,
        state=TxState.RECEIVED,
        terminal_id="T0001",
        merchant_id="M001",
        stan=n % 999_999 + 1,
        local_date="2027-01-15",
        local_time="2027-01-15T10:30:00",
        amount_minor=1234,
        currency="EUR",
        card_token="tok_9f8e7d6c",
        masked_pan="411111******1111",
        bin="41111111",
        scheme="VISA",
        rrn=f"{n:012d}",
        created_at=NOW,
        updated_at=NOW,
        deadline_at=NOW + 2.0,
        idempotency_key=f"key-{n}",
        entry_mode="CHIP",
        mcc="5411",
    )
    return dataclasses.replace(tx, **changes)
