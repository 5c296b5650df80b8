"""The settlement run at cut-off: close batches, write clearing files, have the acquirer and
issuer back offices consume them, read the settlement reports back, settle transactions.

``run_cutoff`` steps, each safe to repeat after a crash:

1. join every capture or refund whose batch join failed at the time to its terminal's open
   batch (``switch.backoffice.batches.sweep``), then close every terminal's open batch that has
   items (``Store.close_batch``, atomic);
2. every CLOSED batch becomes clearing records: a captured sale (state CAPTURED) is a CAPTURE
   presentment of its captured amount, an approved refund a REFUND presentment, a void
   nothing; records go to their acquirer's file (``clearing.write_clearing_file``; one file
   per acquirer per run, an empty one when it has nothing), then the batches are CLEARED;
   a batch holding a captured stand-in sale whose advice is still owed stays CLOSED, whole,
   for a later run (``switch.backoffice.settlement.standin``);
3. each acquirer's ``Settle`` (``acquirer.back_office``) presents its file to the issuers
   and writes the settlement report (every file of the acquirer that has no report yet, so a
   file an unreachable acquirer missed is settled by the next run; an acquirer or issuer that
   does not answer is logged and skipped, the rest of the run goes on); the switch reads each
   report and moves every SETTLED capture
   CAPTURED -> SETTLED (a partial capture settles its captured amount) and every SETTLED
   refund APPROVED -> SETTLED (a refund-only transition,
   ``switch.domain.transactions.TYPED_TRANSITIONS``). REJECTED entries stay CAPTURED
   (APPROVED) for the operator;
4. every issuer's ``ExpireHolds`` releases holds that expired uncaptured.

Hooks: ``on_presented(tx, record)`` after a record is written, ``on_settled(tx, entry)``
after a SETTLED entry is read: the functions registered here, and the methods of the
``hooks`` objects passed to ``run_cutoff`` (the switch passes its
``switch.backoffice.ledger.Ledger``, which posts the presentment and the settlement). Hooks must be
idempotent: a repeated run may call them again for the same transaction (the ledger posts once per
event id). A failing hook is logged and does not stop the run.

A crash between writing a file and marking its batches CLEARED presents them again in the
next file: the issuer answers a presentment it has seen with its first result, and the
switch's CAPTURED -> SETTLED compare-and-set happens once, so nothing is posted twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc

from payswitch.logs import get as get_logger
from payswitch.process import connect_address
from payswitch.settlement.clearing import cutoff_date, write_clearing_file
from payswitch.settlement.report import read_report, report_path
from payswitch.tls import aio_channel
from payswitch.v1 import settlement_pb2, settlement_pb2_grpc
from payswitch.world.topology import Topology
from switch.backoffice.batches.sweep import join_unbatched
from switch.backoffice.settlement.standin import advice_owed
from switch.domain.batches import BatchState, ClosedBatch, ItemKind
from switch.domain.transactions import CasFailed, Changes, Expect, Transaction, TxState, TxType
from switch.store.base import Store

_log = get_logger("switch.backoffice.settlement")

# A JSON record of payswitch.settlement's formats: a clearing presentment, a settlement report
# or one of its entries.
Record = dict[str, Any]
Hook = Callable[[Transaction, Record], Awaitable[object]]  # what it returns is not used
_on_presented: list[Hook] = []
_on_settled: list[Hook] = []

SETTLE_TIMEOUT_S = 60.0


class SettlementHooks(Protocol):
    """What ``run_cutoff`` calls besides the registered hooks (e.g. the ledger)."""

    async def on_presented(self, tx: Transaction, record: Record) -> object: ...

    async def on_settled(self, tx: Transaction, entry: Record) -> object: ...


def on_presented(hook: Hook) -> Hook:
    """Register ``hook(tx, clearing_record)``; usable as a decorator."""
    _on_presented.append(hook)
    return hook


def on_settled(hook: Hook) -> Hook:
    """Register ``hook(tx, settlement_entry)`` for SETTLED entries; usable as a decorator."""
    _on_settled.append(hook)
    return hook


@dataclass
class CutoffResult:
    cutoff_at: float
    closed: list[ClosedBatch] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    reports: dict[str, Record] = field(default_factory=dict)  # file id -> settlement report
    settled: list[str] = field(default_factory=list)  # transaction ids now SETTLED
    released: dict[str, list[str]] = field(default_factory=dict)  # issuer -> RRNs
    unsettled: list[Path] = field(default_factory=list)  # files left for the next run

    def totals(self) -> dict[str, dict[str, int]]:
        """Per currency over every report: gross, fees, net (never across currencies)."""
        out: dict[str, dict[str, int]] = {}
        for report in self.reports.values():
            for cur, t in report["totals"].items():
                line = out.setdefault(cur, {"gross_minor": 0, "fees_minor": 0, "net_minor": 0})
                for k in line:
                    line[k] += t[k]
        return dict(sorted(out.items()))


def record_of(tx: Transaction, kind: str, batch_no: int, original: Transaction | None) -> Record:
    """One clearing presentment (no PAN: masked PAN and token); a converted sale's with both
    amounts (``clearing.FX_FIELDS``)."""
    converted: Record = {}
    if tx.billing_currency:
        converted = {
            "billing_minor": tx.billing_captured_minor if kind == "CAPTURE" else tx.billing_minor,
            "billing_currency": tx.billing_currency,
            "fx_rate": tx.fx_rate,
            "rate_table": tx.rate_table,
        }
    return {
        **converted,
        "kind": kind,
        "transaction_id": tx.id,
        "rrn": tx.rrn,
        "original_rrn": original.rrn if original is not None else "",
        "terminal_id": tx.terminal_id,
        "merchant_id": tx.merchant_id,
        "scheme": tx.scheme,
        "bin": tx.bin,
        "masked_pan": tx.masked_pan,
        "card_token": tx.card_token,
        "mcc": tx.mcc,
        "amount_minor": tx.captured_minor if kind == "CAPTURE" else tx.amount_minor,
        "currency": tx.currency,
        "auth_code": tx.auth_code if original is None else original.auth_code,
        "authorized_minor": tx.amount_minor if original is None else original.amount_minor,
        "captured_at": int(tx.updated_at),
        "batch_no": batch_no,
    }


async def _call_hooks(hooks: list[Hook], tx: Transaction, doc: Record) -> None:
    for hook in hooks:
        try:
            await hook(tx, doc)
        except Exception:
            _log.exception("settlement_hook_failed", tx=tx.id)


async def close_open_batches(
    store: Store, terminals: list[str], now: float, *, skip_empty: bool = True
) -> list[ClosedBatch]:
    closed = []
    for terminal_id in terminals:
        if skip_empty:
            open_no = await store.open_batch_no(terminal_id, now)
            if not await store.batch_items(terminal_id, open_no):
                continue
        closed.append(await store.close_batch(terminal_id, now))
    return closed


async def _records(
    store: Store, terminal_id: str, batch_no: int
) -> list[tuple[Transaction, Record]]:
    out: list[tuple[Transaction, Record]] = []
    for item in await store.batch_items(terminal_id, batch_no):
        if item.kind is ItemKind.VOID:
            continue
        tx = await store.get_transaction(item.transaction_id)
        if tx is None:
            continue
        if item.kind is ItemKind.SALE and tx.state is TxState.CAPTURED:
            out.append((tx, record_of(tx, "CAPTURE", batch_no, None)))
        elif item.kind is ItemKind.REFUND and tx.type is TxType.REFUND:
            if tx.state is TxState.APPROVED:
                original = await store.get_transaction(tx.original_id)
                out.append((tx, record_of(tx, "REFUND", batch_no, original)))
    return out


async def run_cutoff(
    store: Store,
    topology: Topology,
    *,
    directory: Path | None = None,
    now: float | None = None,
    hooks: Sequence[SettlementHooks] = (),
    credentials: grpc.ChannelCredentials | None = None,
) -> CutoffResult:
    """One whole settlement run (see the module docstring). ``hooks``: objects with
    ``on_presented(tx, record)`` and ``on_settled(tx, entry)`` coroutine methods.
    ``credentials``: the switch's network identity for the back-office calls (the acquirers'
    ``Settle`` and the issuers' ``ExpireHolds`` take them from the switch only); None when the
    topology's network is plaintext."""
    presented = [*_on_presented, *(h.on_presented for h in hooks)]
    settled_hooks = [*_on_settled, *(h.on_settled for h in hooks)]
    now = time.time() if now is None else now
    directory = Path(directory or topology.settlement.directory())
    result = CutoffResult(cutoff_at=now)
    terminals = [t.id for t in topology.terminals]
    await join_unbatched(store, now)  # captures/refunds whose batch join failed at the time
    result.closed = await close_open_batches(store, terminals, now)

    by_acquirer: dict[str, list[tuple[Transaction, Record]]] = {
        a.id: [] for a in topology.acquirers
    }
    cleared: list[tuple[str, int]] = []
    for terminal_id in terminals:
        for info in await store.batches_of(terminal_id):
            if info.state is not BatchState.CLOSED:
                continue
            records = await _records(store, terminal_id, info.batch_no)
            waiting = [
                tx.id
                for tx, rec in records
                if rec["kind"] == "CAPTURE" and await advice_owed(store, tx)
            ]
            if waiting:  # a stand-in sale not advised yet: the batch waits (settlement.standin)
                _log.warning(
                    "clearing_waits_for_advice",
                    terminal=terminal_id,
                    batch=info.batch_no,
                    transactions=waiting,
                )
                continue
            for tx, rec in records:
                by_acquirer.setdefault(tx.acquirer_id, []).append((tx, rec))
            cleared.append((terminal_id, info.batch_no))
    for acquirer_id, pairs in by_acquirer.items():
        seq = await store.next_sequence(f"clearing:{acquirer_id}:{cutoff_date(now)}")
        path = await asyncio.to_thread(
            write_clearing_file,
            directory,
            acquirer_id,
            now,
            seq,
            [r for _, r in pairs],
            time.time(),
        )
        result.files[acquirer_id] = path
        for tx, rec in pairs:
            await _call_hooks(presented, tx, rec)
    for terminal_id, batch_no in cleared:
        await store.mark_batch_cleared(terminal_id, batch_no)
    _log.info("clearing_written", files=len(result.files), batches=len(cleared))

    channels: dict[str, grpc.aio.Channel] = {}

    def channel_to(listen: str, server: tuple[str, str]) -> grpc.aio.Channel:
        address = connect_address(listen)
        if address not in channels:
            channels[address] = aio_channel(address, credentials, server=server)
        return channels[address]

    try:
        for acquirer in topology.acquirers:
            stub = settlement_pb2_grpc.AcquirerSettlementServiceStub(
                channel_to(acquirer.listen, ("acquirer", acquirer.id))
            )
            for path in await asyncio.to_thread(unsettled_files, directory, acquirer.id):
                try:
                    resp = await stub.Settle(
                        settlement_pb2.SettleRequest(
                            clearing_path=str(path),
                            report_dir=str(directory),
                            now_ms=int(now * 1000),
                        ),
                        timeout=SETTLE_TIMEOUT_S,
                    )
                except grpc.aio.AioRpcError as exc:
                    # Left for the next run: the file stays without a report until settled.
                    _log.warning("settle_failed", acquirer=acquirer.id, code=exc.code().name)
                    result.unsettled.append(path)
                    break
                report = await asyncio.to_thread(read_report, Path(resp.report_path))
                result.reports[report["file_id"]] = report
                result.settled += await _apply_report(store, report, settled_hooks)
        for issuer in topology.issuers:
            issuer_stub = settlement_pb2_grpc.IssuerSettlementServiceStub(
                channel_to(issuer.listen, ("issuer", issuer.id))
            )
            try:
                resp = await issuer_stub.ExpireHolds(
                    settlement_pb2.ExpireHoldsRequest(
                        now_ms=int(now * 1000), report_dir=str(directory)
                    ),
                    timeout=SETTLE_TIMEOUT_S,
                )
            except grpc.aio.AioRpcError as exc:
                _log.warning("expire_holds_failed", issuer=issuer.id, code=exc.code().name)
                continue
            result.released[issuer.id] = list(resp.released_rrns)
    finally:
        for channel in channels.values():
            await channel.close()
    _log.info(
        "settlement_done",
        settled=len(result.settled),
        released=sum(len(v) for v in result.released.values()),
    )
    return result


def unsettled_files(directory: Path, acquirer_id: str) -> list[Path]:
    """The acquirer's clearing files that have no settlement report yet, oldest first: the
    file just written, and any an earlier run could not get settled (acquirer down)."""
    folder = Path(directory) / "clearing" / acquirer_id
    out = []
    for path in sorted(folder.glob("*.jsonl")):
        file_id = f"{acquirer_id}-{path.stem}"
        if not report_path(directory, acquirer_id, file_id).exists():
            out.append(path)
    return out


async def _apply_report(store: Store, report: Record, hooks: list[Hook]) -> list[str]:
    settled = []
    for entry in report["entries"]:
        if entry["status"] != "SETTLED":
            continue
        tx = await store.get_transaction(entry["transaction_id"])
        if tx is None:
            continue
        if entry["kind"] == "CAPTURE" and tx.state is TxState.CAPTURED:
            try:
                tx = await store.transition(
                    tx.id, TxState.CAPTURED, TxState.SETTLED, Changes(updated_at=time.time())
                )
                settled.append(tx.id)
            except CasFailed as exc:
                tx = exc.current  # settled by an earlier run
        elif entry["kind"] == "REFUND" and tx.state is TxState.APPROVED:
            tx = await settle_refund(store, tx)
            if tx.state is TxState.SETTLED:
                settled.append(tx.id)
        await _call_hooks(hooks, tx, entry)
    return settled


async def settle_refund(store: Store, tx: Transaction) -> Transaction:
    """APPROVED -> SETTLED for a refund the acquirer settled (``TYPED_TRANSITIONS``: the
    compare-and-set expects the REFUND type, so no authorization can skip its capture)."""
    try:
        return await store.compare_and_set(
            tx.id,
            Expect(state=TxState.APPROVED, type=TxType.REFUND),
            Changes(state=TxState.SETTLED, updated_at=time.time()),
        )
    except CasFailed as exc:
        return exc.current  # settled by an earlier run
