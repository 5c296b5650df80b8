"""An authorization's writes on Cassandra in two Paxos rounds (issue 19).

Before: eight LWTs per authorization (key claim; device; vault; STAN claim; row insert; key
attachment; RECEIVED -> PENDING; final transition; key completion). Only two of them guard a
race a plain write could lose, so only two remain:

1. ``receive_with_intent``: the device's counter and the STAN claim, one conditional batch on
   the terminal's partition (``guards.py``): the race is a replayed KSN or STAN reaching two
   switch processes at once. Then plain writes, each made true by that claim: the row,
   written already PENDING (nobody else can know the transaction id before it, and ``USING
   TIMESTAMP 1`` lets every later Paxos write win, as the bulk load does), its index entries,
   and the key's attachment (``idempotency_attachments``, plain only, by claim). The vault
   entry is a plain write too (``vault.py``). The key was claimed by the ``claim`` stage (its
   own LWT: the race is a retry on another process).
2. ``record_with_answer``: the final transition's compare-and-set carries the key's answer
   (``answer_scope``, ``answer_key``, ``answer`` on the row): one Paxos round records the
   outcome and the answer, where the key's completion was a second one on the key's
   partition. The race is recovery moving the row at its deadline.

The key's row then still says IN_FLIGHT; ``CassandraStore`` reads a key as COMPLETED when its
attached transaction carries the answer for it (``answered``), and that answer wins over any
completion written later on the key's row (only the final transition's winner wrote it, and it
is what the terminal was sent). The answer leaves the switch only after that LWT: nothing
durable is given up.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, cast

from switch.domain.devices import DeviceUse
from switch.domain.errors import NotFound, StoreError
from switch.domain.idempotency import Answer, IdempotencyRecord, IdemStatus
from switch.domain.risk import Observing
from switch.domain.transactions import (
    COLUMNS,
    Changes,
    Expect,
    ReceivedOnly,
    Recorded,
    Transaction,
    TxState,
    check_cas,
    check_new,
    check_transition,
)
from switch.domain.vault import VaultWrite
from switch.store.cassandra.cql import idem_from_row, tx_values
from switch.store.cassandra.exec import Cql, Row
from switch.store.cassandra.guards import Sent
from switch.store.cassandra.host import CassandraHost
from switch.store.cassandra.index import bucket_of
from switch.store.risk import observe_within

if TYPE_CHECKING:
    from switch.store.cassandra.index import StateIndex
    from switch.store.risk import RiskStore

_CQL = {
    "tx_put": f"INSERT INTO transactions ({', '.join(COLUMNS)}, writers) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(COLUMNS))}, ?) USING TIMESTAMP 1",
    "attach": "INSERT INTO idempotency_attachments (scope, key, claim_id, transaction_id) "
    "VALUES (?, ?, ?, ?) USING TTL ?",
    "attached": "SELECT transaction_id FROM idempotency_attachments "
    "WHERE scope = ? AND key = ? AND claim_id = ?",
    "answer": "SELECT answer_scope, answer_key, answer FROM transactions WHERE id = ?",
    "idem_get": "SELECT status, claim_id, expires_at FROM idempotency WHERE scope = ? AND key = ?",
}
ATTACHED = 100_000  # keys this process attached in an intent (scope, key) -> transaction id


class CassandraIntent(CassandraHost):
    """Mixin for ``CassandraStore``: the two composite writes of an authorization."""

    if TYPE_CHECKING:
        _claims: Any
        _index: StateIndex | None

        async def _guard(self, use: DeviceUse | None, sent: Sent | None, now: float) -> Any: ...
        async def _release_sent(self, sent: Sent) -> None: ...
        async def put_vault_entry(
            self, token_digest: str, blob: bytes, key_version: int, now: float
        ) -> bool: ...
        async def _cas(
            self,
            tx_id: str,
            expected: Any,
            changes: Any,
            indexed: Any = None,
            drops: Any = None,
            extra: dict[str, Any] | None = None,
        ) -> Transaction: ...
        async def transition(
            self, tx_id: str, from_state: TxState, to_state: TxState, changes: Changes | None = None
        ) -> Transaction: ...
        async def complete_idempotency(
            self, scope: str, key: str, response: bytes, transaction_id: str
        ) -> None: ...
        def _remember(self, tx: Transaction) -> None: ...

    _attached: dict[tuple[str, str], str] | None = None

    async def _intent_cql(self) -> tuple[Cql, dict[str, Any]]:
        return await self._prepared("intent", _CQL)

    def _attached_keys(self) -> dict[tuple[str, str], str]:
        if self._attached is None:
            self._attached = {}
        return self._attached

    # --- 1: the intent ------------------------------------------------------------------
    async def receive_with_intent(
        self,
        tx: Transaction,
        *,
        vault: VaultWrite | None,
        attach: tuple[str, str] | None,
        acquirer_id: str,
        now: float,
        device: DeviceUse | None = None,
        risk: Observing | None = None,
    ) -> Transaction:
        if tx.state is not TxState.RECEIVED:
            raise ValueError("receive_with_intent: the transaction must be new (RECEIVED)")
        check_new(tx)
        bucket_of(tx.deadline_at)
        cql, q = await self._intent_cql()
        if vault is not None:
            await self.put_vault_entry(vault.token_digest, vault.blob, vault.key_version, now)
        async with cql.serialised("tx", tx.id):
            return await cql.shielded(
                self._intent(cql, q, tx.copy(), attach, acquirer_id, now, device, risk)
            )

    async def _intent(
        self,
        cql: Cql,
        q: dict[str, Any],
        tx: Transaction,
        attach: tuple[str, str] | None,
        acquirer_id: str,
        now: float,
        device: DeviceUse | None,
        risk: Observing | None = None,
    ) -> Transaction:
        index = self._index
        assert index is not None
        row = tx
        if acquirer_id:
            row = tx.copy(
                state=TxState.PENDING,
                acquirer_id=acquirer_id,
                updated_at=now,
                version=tx.version + 1,
            )
        sent = Sent(tx.terminal_id, tx.local_date, tx.stan, tx.id, uuid.uuid4())
        # All at once: until the row exists the index entries are only stale hints.
        results: tuple[Any, ...] = await asyncio.gather(
            self._guard(device, sent, now),
            asyncio.gather(index.put(row.state, row.deadline_at, row.id), index.put_refund(row)),
            self._held(cql, q, attach),
            return_exceptions=True,
        )
        guarded, hinted, held = results
        if isinstance(guarded, BaseException):
            raise guarded  # refused or duplicate: nothing of ours to undo
        try:
            if isinstance(hinted, BaseException):
                raise hinted
            if isinstance(held, BaseException):
                raise held
        except StoreError:
            await self._release_sent(sent)
            raise
        if attach is not None and held is None:  # the key is no longer ours: stop at RECEIVED
            if row is not tx:
                await index.put(tx.state, tx.deadline_at, tx.id)
            await self._put_row(cql, q, tx, sent)
            raise ReceivedOnly(tx, NotFound(f"idempotency key {attach[1]!r} is not in flight"))
        writes: list[Coroutine[Any, Any, object]] = [self._put_row(cql, q, row, sent)]
        if attach is not None and isinstance(held, tuple):
            claim_id, ttl = held
            writes.append(cql.run(q["attach"], (attach[0], attach[1], claim_id, tx.id, ttl)))
        if risk is not None:  # beside the row's write, once the guard let the request through
            writes.append(observe_within(cast("RiskStore", self), risk, now))
        await asyncio.gather(*writes)
        if attach is not None:
            attached = self._attached_keys()
            if len(attached) >= ATTACHED:
                attached.clear()
            attached[attach] = tx.id
        self._remember(row)
        return row.copy()

    async def _put_row(self, cql: Cql, q: dict[str, Any], row: Transaction, sent: Sent) -> None:
        await cql.run(q["tx_put"], (*tx_values(row), {row.version: sent.writer}))

    async def _held(
        self, cql: Cql, q: dict[str, Any], attach: tuple[str, str] | None
    ) -> tuple[uuid.UUID, int] | None:
        """The claim id and remaining TTL of ``attach``'s key when it is still in flight under
        a live claim (a plain read of its row), else None."""
        if attach is None:
            return None
        rows = await cql.run(q["idem_get"], attach)
        if not rows:
            return None
        r = rows[0]
        if r["status"] != IdemStatus.IN_FLIGHT.value or float(r["expires_at"]) <= time.time():
            return None
        known = self._claims.get(attach)
        if known is not None and known[0] != r["claim_id"]:
            return None  # released and claimed again by another request
        ttl = max(int(float(r["expires_at"]) - time.time()) + 300, 1)
        return r["claim_id"], ttl

    # --- 2: the final transition with the answer ----------------------------------------
    async def record_with_answer(
        self,
        tx_id: str,
        from_state: TxState,
        to_state: TxState,
        changes: Changes,
        answer: Answer | None,
    ) -> Recorded:
        attached = self._attached_keys()
        if answer is None or attached.get((answer.scope, answer.key)) != tx_id:
            recorded: Recorded = await super().record_with_answer(  # type: ignore[misc]
                tx_id, from_state, to_state, changes, answer
            )
            return recorded
        check_transition(from_state, to_state)
        want, updates = check_cas(Expect(state=from_state), changes.to(to_state))
        extra = {
            "answer_scope": answer.scope,
            "answer_key": answer.key,
            "answer": bytes(answer.response),
        }
        cql = self._open()
        async with cql.serialised("tx", tx_id):
            tx = await cql.shielded(self._cas(tx_id, want, updates, extra=extra))
        attached.pop((answer.scope, answer.key), None)
        self._claims.pop((answer.scope, answer.key), None)
        return Recorded(tx, answered=True)

    # --- reading a key -------------------------------------------------------------------
    async def answered(self, row: Row) -> IdempotencyRecord:
        """The key's record as its row and its attached transaction say: COMPLETED with the
        transaction's answer when the final transition kept one for this key."""
        record = idem_from_row(row)
        if record.status not in (IdemStatus.IN_FLIGHT, IdemStatus.COMPLETED):
            return record
        cql, q = await self._intent_cql()
        tx_id = record.transaction_id
        if not tx_id and row.get("claim_id") is not None:
            rows = await cql.run(q["attached"], (record.scope, record.key, row["claim_id"]))
            tx_id = str(rows[0]["transaction_id"]) if rows else ""
        if not tx_id:
            return record
        rows = await cql.run(q["answer"], (tx_id,))
        kept = rows[0] if rows else {}
        if (kept.get("answer_scope"), kept.get("answer_key")) == (record.scope, record.key):
            response = bytes(kept.get("answer") or b"")
            if response:
                status = IdemStatus.COMPLETED
                return dataclasses.replace(
                    record, status=status, response=response, transaction_id=tx_id
                )
        return dataclasses.replace(record, transaction_id=tx_id)
