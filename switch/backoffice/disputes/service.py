"""``Disputes``: ingest the issuers' chargeback files, run the cycle, post to the ledger.

Every step is a compare-and-set on the dispute's state first and the ledger posting second
(the posting is idempotent on (transaction, kind, chargeback id)). A crash in between leaves a
state whose posting is missing; ``sync_postings`` (run by every CLI command) posts what each
state implies, so nothing is lost and nothing posts twice. Ingesting a file again changes
nothing: disputes are keyed by the issuer's chargeback id.

A chargeback is accepted only on a SETTLED sale that the ledger saw presented (found by RRN),
in the sale's currency, for at most what is left of it (captured - refunded - other disputes
not won). A converted sale's chargeback comes in the billing currency (the issuer's books):
it is converted back into the sale's currency at the sale's own rate (``fx.convert_back``: the
whole billed amount gives back exactly the captured amount) and kept in the sale's currency.
Anything else is rejected with the reason and counted, never recorded.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from payswitch import fx
from payswitch.dispute_reasons import check_reason
from switch.backoffice.disputes import cycle
from switch.backoffice.ledger.events import Event, EventKind
from switch.backoffice.ledger.ledger import Ledger
from switch.domain.errors import NotFound
from switch.domain.ledger import Dispute, DisputeChanges, DisputeConflict, DisputeState
from switch.domain.transactions import Transaction, TxState, TxType
from switch.store.base import Store
from switch.store.ledger import dispute_pages


class DisputeRejected(ValueError):
    """A chargeback or step the cycle refuses; the message names the field or the rule."""


@dataclass
class IngestResult:
    created: list[str] = field(default_factory=list)
    repeated: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (chargeback id, why)


class Disputes:
    def __init__(
        self,
        store: Store,
        ledger: Ledger | None = None,
        *,
        representment_days: int = cycle.REPRESENTMENT_DAYS,
        response_days: int = cycle.RESPONSE_DAYS,
    ) -> None:
        self.store = store
        self.ledger = ledger or Ledger(store)
        self.representment_s = representment_days * cycle.DAY_S
        self.response_s = response_days * cycle.DAY_S

    # --- ingestion ------------------------------------------------------------------------
    async def ingest_dir(self, directory: str | Path, now: float | None = None) -> IngestResult:
        """Every ``<dir>/chargebacks/<issuer>/<date>.jsonl``, oldest day first."""
        records = await asyncio.to_thread(read_chargeback_files, directory)
        chargebacks = [r for r in records if r.get("record") == "chargeback"]
        responses = [r for r in records if r.get("record") == "representment_response"]
        return await self.ingest([*chargebacks, *responses], now)

    async def ingest(
        self, records: Iterable[Mapping[str, object]], now: float | None = None
    ) -> IngestResult:
        at = time.time() if now is None else now
        result = IngestResult()
        for rec in records:
            cb_id = str(rec.get("chargeback_id") or "")
            try:
                if rec.get("record") == "chargeback":
                    _, new = await self.open_chargeback(rec, at)
                    (result.created if new else result.repeated).append(cb_id)
                elif rec.get("record") == "representment_response":
                    if await self._answered(cb_id, bool(rec.get("accepted")), at):
                        result.resolved.append(cb_id)
                else:
                    raise DisputeRejected(f"record: unknown record type {rec.get('record')!r}")
            except (DisputeRejected, NotFound) as exc:
                result.rejected.append((cb_id, str(exc)))
        return result

    async def open_chargeback(
        self, rec: Mapping[str, object], now: float | None = None
    ) -> tuple[Dispute, bool]:
        at = time.time() if now is None else now
        cb_id = _text(rec, "chargeback_id")
        known = await self.store.dispute_get(cb_id)
        if known is not None:
            return known, False
        rrn = _text(rec, "rrn")
        amount = rec.get("amount_minor")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise DisputeRejected("amount_minor: must be a positive integer (minor units)")
        raised_at = rec.get("raised_at")
        if not isinstance(raised_at, int | float) or isinstance(raised_at, bool):
            raise DisputeRejected("raised_at: must be Unix seconds")
        tx = await self._sale_of(rrn)
        try:
            check_reason(_text(rec, "reason_code"), tx.scheme)
        except ValueError as exc:
            raise DisputeRejected(str(exc)) from None
        if tx.billing_currency and rec.get("currency") == tx.billing_currency != tx.currency:
            try:
                amount = fx.convert_back(amount, tx.billing_captured_minor, tx.captured_minor)
            except fx.FxError:
                raise DisputeRejected(
                    f"amount_minor: more than the {tx.billing_captured_minor} billed"
                ) from None
        elif rec.get("currency") != tx.currency:
            raise DisputeRejected(f"currency: the sale is in {tx.currency}")
        disputed = sum(
            d.amount_minor
            for d in await self.store.disputes_of(tx.id)
            if d.state is not DisputeState.WON
        )
        left = tx.captured_minor - tx.refunded_minor - disputed
        if amount > left:
            raise DisputeRejected(f"amount_minor: only {left} of the sale is left to dispute")
        dispute = Dispute(
            dispute_id=cb_id,
            transaction_id=tx.id,
            rrn=rrn,
            merchant_id=tx.merchant_id,
            acquirer_id=tx.acquirer_id,
            issuer_id=str(rec.get("issuer_id") or ""),
            amount_minor=amount,
            currency=tx.currency,
            reason_code=_text(rec, "reason_code"),
            state=DisputeState.CHARGEBACK,
            raised_at=float(raised_at),
            representment_due=float(raised_at) + self.representment_s,
            updated_at=at,
        )
        stored, new = await self.store.dispute_create(dispute)
        await self._post(stored, EventKind.CHARGEBACK, stored.updated_at)
        return stored, new

    async def _sale_of(self, rrn: str) -> Transaction:
        presented = [
            p
            for p in await self.store.ledger_postings_for_rrn(rrn)
            if p.kind == EventKind.CAPTURE_PRESENTED.value
        ]
        if not presented:
            raise DisputeRejected(f"rrn: no presented sale with RRN {rrn}")
        tx = await self.store.get_transaction(presented[0].transaction_id)
        if tx is None or tx.type is not TxType.AUTHORIZATION:
            raise DisputeRejected(f"rrn: no sale with RRN {rrn}")
        if tx.state is not TxState.SETTLED:
            raise DisputeRejected(f"rrn: the sale is {tx.state.value}, not SETTLED")
        return tx

    # --- the cycle --------------------------------------------------------------------------
    async def represent(self, dispute_id: str, evidence: str, now: float | None = None) -> Dispute:
        at = time.time() if now is None else now
        if not evidence.strip():
            raise DisputeRejected("evidence: the representment needs evidence")
        d = await self._get(dispute_id)
        if d.state is DisputeState.CHARGEBACK and at > d.representment_due:
            await self.expire(at)
            raise DisputeRejected("representment_due: passed; the chargeback was accepted")
        moved = await self._move(
            d, DisputeState.CHARGEBACK, DisputeState.REPRESENTED,
            DisputeChanges(evidence=evidence, response_due=at + self.response_s, updated_at=at),
        )  # fmt: skip
        await self._post(moved, EventKind.REPRESENTMENT, at)
        return moved

    async def accept(self, dispute_id: str, note: str = "", now: float | None = None) -> Dispute:
        at = time.time() if now is None else now
        d = await self._get(dispute_id)
        changes = DisputeChanges(note=note or "accepted by the merchant", updated_at=at)
        return await self._move(d, DisputeState.CHARGEBACK, DisputeState.ACCEPTED, changes)

    async def resolve(
        self, dispute_id: str, won: bool, note: str = "", now: float | None = None
    ) -> Dispute:
        """The issuer's answer to the representment: won (accepted) or lost (rejected)."""
        at = time.time() if now is None else now
        d = await self._get(dispute_id)
        to = DisputeState.WON if won else DisputeState.LOST
        moved = await self._move(
            d,
            DisputeState.REPRESENTED,
            to,
            DisputeChanges(note=note or to.value.lower(), updated_at=at),
        )
        kind = EventKind.DISPUTE_WON if won else EventKind.DISPUTE_LOST
        await self._post(moved, kind, at)
        return moved

    async def _answered(self, dispute_id: str, accepted: bool, at: float) -> bool:
        d = await self._get(dispute_id)
        if d.state in (DisputeState.WON, DisputeState.LOST):
            return False  # answered before (a file read again)
        note = "issuer accepted the representment" if accepted else "issuer rejected it"
        await self.resolve(dispute_id, won=accepted, note=note, now=at)
        return True

    async def expire(self, now: float | None = None) -> list[Dispute]:
        """Apply missed deadlines (see ``cycle``); returns the disputes moved."""
        at = time.time() if now is None else now
        moved = []
        async for page in dispute_pages(self.store, DisputeState.CHARGEBACK):
            for d in page:
                if at > d.representment_due:
                    note = "representment deadline passed: the chargeback stands"
                    try:
                        moved.append(await self.accept(d.dispute_id, note, at))
                    except DisputeConflict:
                        continue  # someone moved it first
        async for page in dispute_pages(self.store, DisputeState.REPRESENTED):
            for d in page:
                if at > d.response_due:
                    note = "issuer response deadline passed: the representment stands"
                    try:
                        moved.append(await self.resolve(d.dispute_id, True, note, at))
                    except DisputeConflict:
                        continue
        return moved

    async def sync_postings(self) -> int:
        """Post whatever each dispute's state implies and is missing; returns how many."""
        posted = 0
        async for page in dispute_pages(self.store):  # a page of disputes, one store call
            events = [
                _event(d, kind, d.updated_at) for d in page for kind in cycle.POSTINGS[d.state]
            ]
            if events:
                posted += await self.ledger.post_many(events)
        return posted

    # --- helpers ------------------------------------------------------------------------------
    async def _get(self, dispute_id: str) -> Dispute:
        d = await self.store.dispute_get(dispute_id)
        if d is None:
            raise NotFound(f"no dispute {dispute_id}")
        return d

    async def _move(
        self, d: Dispute, from_state: DisputeState, to: DisputeState, changes: DisputeChanges
    ) -> Dispute:
        if d.state is not from_state:
            raise DisputeRejected(f"state: a {d.state.value} dispute cannot become {to.value}")
        return await self.store.dispute_transition(d.dispute_id, from_state, to, changes)

    async def _post(self, d: Dispute, kind: EventKind, at: float) -> bool:
        return await self.ledger.post(_event(d, kind, at))


def _event(d: Dispute, kind: EventKind, at: float) -> Event:
    return Event(
        kind=kind,
        transaction_id=d.transaction_id,
        sequence=d.dispute_id,
        merchant_id=d.merchant_id,
        acquirer_id=d.acquirer_id,
        scheme="",
        amount_minor=d.amount_minor,
        currency=d.currency,
        occurred_at=at,
        rrn=d.rrn,
    )


def read_chargeback_files(directory: str | Path) -> list[dict[str, object]]:
    """Every record of ``<dir>/chargebacks/<issuer>/<date>.jsonl``, oldest day first."""
    files = sorted(
        Path(directory).glob("chargebacks/*/*.jsonl"), key=lambda p: (p.name, p.parent.name)
    )
    records: list[dict[str, object]] = []
    for path in files:
        records.extend(json.loads(x) for x in path.read_text().splitlines() if x.strip())
    return records


def _text(rec: Mapping[str, object], name: str) -> str:
    value = rec.get(name)
    if not isinstance(value, str) or not value:
        raise DisputeRejected(f"{name}: required")
    return value
