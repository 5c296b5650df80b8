"""The invariants a fault-injection run must keep, checked after quiescence against three
views of the same money: what the terminals saw (``driver.Seen``), what the switch recorded
(its transactions, read over the terminal API by idempotency key) and the issuers' books
(their SQLite files, read-only).

They are checked after the seed's cut-off (``cutoff.py``, which checks the ledger, the
merchant payables and the reconciliation itself).

Decisions stated here:
- An approval the terminal keeps (lifecycle KEEP) legitimately keeps its hold open: the
  cut-off settles captures only and no hold expires during a run, so HELD is its correct end
  state (APPROVED, or ADVISED for a stand-in sale whose advice placed the hold).
- Every sale captured (in full, in part, with a tip above the hold) ends SETTLED by the
  cut-off, the issuer's row POSTED for the captured amount; a refund the plan makes is
  answered 00 and the sale's refunded amount agrees with the issuer's.
- A void answered 00 may have been queued (REVERSAL_PENDING); after quiescence it must be
  VOIDED or REVERSED, and the hold RELEASED.
- An answer other than 00 (a decline, 91, 96) must leave no hold and no posting, whatever
  happened on the network: the switch reverses what it could not confirm.
- Drained means no transaction left PENDING, UNKNOWN, REVERSAL_PENDING or STOOD_IN, and no
  item, live or dead, left in the switch's store-and-forward queue (checked by the harness).
- Stand-in is on: a sale the switch approved itself (acquirer down) is STOOD_IN until its
  advice is acknowledged, then ADVISED with a hold at the issuer; captured, its money reaches
  the issuer's books at clearing (posted against the advice's hold). STOOD_IN after
  quiescence is an advice never delivered: a violation (dead letters are replayed first).
- A 96 with no transaction under the key is the switch's answer to a retry of a request that
  died before its intent write (nothing was recorded or sent).
- A 96 the switch answered but could not keep under the key (its store refused the write: a
  full disk) may be followed by another refusal of the same transaction (91 once recovery
  reversed it) on a retry: ``unrecorded_96``; never by an approval or another transaction.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from payswitch.world.topology import Topology
from terminals.results import TransactionView

from .driver import Seen, unrecorded_96
from .plan import Lifecycle

# STOOD_IN: approved by the switch itself, its advice not yet acknowledged by the issuer.
OPEN_STATES = frozenset({"PENDING", "UNKNOWN", "REVERSAL_PENDING", "RECEIVED", "STOOD_IN"})
NO_MONEY_BOOK_STATES = frozenset({None, "DECLINED", "RELEASED", "REVERSED_EARLY"})
HOLDING_STATES = frozenset({"APPROVED", "ADVISED"})  # a hold open at the issuer
CAPTURING = frozenset({Lifecycle.CAPTURE, Lifecycle.PARTIAL, Lifecycle.TIP, Lifecycle.REFUND})


@dataclass(frozen=True, slots=True)
class BookRow:
    issuer: str
    rrn: str
    account_id: str | None
    state: str
    amount: int
    posted: int
    refunded: int


@dataclass(frozen=True, slots=True)
class Account:
    issuer: str
    id: str
    balance: int
    held: int
    open_holds: int


@dataclass(frozen=True, slots=True)
class Books:
    rows: dict[str, BookRow]  # by RRN, every issuer
    accounts: dict[str, Account]


def read_books(books_dir: Path, issuers: list[str]) -> Books:
    """Every issuer's books, read-only (the issuers may still be running)."""
    rows: dict[str, BookRow] = {}
    accounts: dict[str, Account] = {}
    for issuer in issuers:
        path = books_dir / f"{issuer}.db"
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            for r in db.execute(
                "SELECT rrn, account_id, state, amount, posted, refunded FROM authorizations"
            ):
                rows[r[0]] = BookRow(issuer, *r)
            for a in db.execute("SELECT id, balance, held, open_holds FROM accounts"):
                accounts[a[0]] = Account(issuer, *a)
        finally:
            db.close()
    return Books(rows, accounts)


def is_open(view: TransactionView | None) -> bool:
    return view is not None and view.state in OPEN_STATES


def check(
    topology: Topology,
    seen: list[Seen],
    views: dict[int, TransactionView | None],
    books: Books,
) -> list[str]:
    """Every violated invariant, one line each, naming the payment (index, key, RRN)."""
    bad: list[str] = []
    by_rrn: dict[str, TransactionView] = {}
    for s in seen:
        view = views.get(s.payment.index)
        tag = f"payment {s.payment.index} key {s.key}"
        if view is not None:
            tag += f" rrn {view.rrn} ({view.state})"
            if view.rrn in by_rrn:
                bad.append(f"{tag}: RRN also used by {by_rrn[view.rrn].transaction_id}")
            by_rrn[view.rrn] = view
        bad += [f"{tag}: unexpected error at the terminal: {e}" for e in s.errors]
        bad += _terminal(s, view, tag)
        if view is not None:
            bad += _lifecycle(s, view, tag)
            bad += _books_agree(view, books.rows.get(view.rrn), tag)
    bad += _orphans(books, by_rrn)
    bad += _accounts(topology, books, by_rrn)
    return bad


def _terminal(s: Seen, view: TransactionView | None, tag: str) -> list[str]:
    bad = []
    if is_open(view):
        bad.append(f"{tag}: still {view.state} after quiescence")
    if not s.answers:
        bad.append(f"{tag}: the terminal never got an answer ({s.gave_up} sends gave up)")
        return bad
    if len(set(s.answers)) > 1 and not unrecorded_96(s.answers[0], set(s.answers)):
        bad.append(f"{tag}: one key, different answers {sorted(set(s.answers))}")
    code, tx_id = s.answers[0]
    if view is None and code in ("00", "91"):
        bad.append(f"{tag}: answered {code} but the switch has no transaction under the key")
    if view is not None and tx_id and tx_id != view.transaction_id:
        bad.append(f"{tag}: answered for {tx_id}, the key names {view.transaction_id}")
    return bad


def _lifecycle(s: Seen, view: TransactionView, tag: str) -> list[str]:
    """Every approval the terminal saw ends as its lifecycle says; nothing else holds money."""
    if not s.approved:
        if view.state not in ("DECLINED", "REVERSED"):
            return [f"{tag}: the terminal saw {s.answers[0][0] if s.answers else 'nothing'}"]
        return []
    p = s.payment
    if p.lifecycle is Lifecycle.KEEP:
        return [] if view.state in HOLDING_STATES else [f"{tag}: kept approval is {view.state}"]
    fu = s.follow_up
    if fu is None or not (fu.acked or fu.precondition):
        return [f"{tag}: {p.lifecycle.value} never resolved at the terminal: {fu}"]
    if p.lifecycle is Lifecycle.VOID:
        if view.state not in ("VOIDED", "REVERSED"):
            return [f"{tag}: voided ({fu.codes}) but {view.state}"]
        return []
    captured = view.captured.minor_units if view.captured else 0
    if view.state != "SETTLED" or captured != p.capture_minor:
        return [f"{tag}: captured {p.capture_minor} ({fu.codes}), after the cut-off "
                f"{view.state} {captured}"]  # fmt: skip
    refunded = view.refunded.minor_units if view.refunded else 0
    want = 0
    if s.refund is not None:
        if s.refund.code != "00":
            return [f"{tag}: refund of {s.refund.amount_minor} answered "
                    f"{s.refund.code or s.refund.error or 'nothing'}"]  # fmt: skip
        want = s.refund.amount_minor
    if refunded != want:
        return [f"{tag}: refunded {want} at the terminal, the switch says {refunded}"]
    return []


def _books_agree(view: TransactionView, row: BookRow | None, tag: str) -> list[str]:
    state = row.state if row else None
    amount = view.amount.minor_units if view.amount else 0
    if view.state in HOLDING_STATES:
        if state != "HELD" or row.amount != amount:
            return [f"{tag}: switch {view.state} {amount}, books {row}"]
    elif view.state in ("CAPTURED", "SETTLED"):
        captured = view.captured.minor_units if view.captured else 0
        refunded = view.refunded.minor_units if view.refunded else 0
        if state != "POSTED" or row.posted != captured or row.refunded != refunded:
            return [f"{tag}: switch {view.state} {captured} refunded {refunded}, books {row}"]
    elif view.state in ("DECLINED", "REVERSED", "VOIDED"):
        if state not in NO_MONEY_BOOK_STATES:
            return [f"{tag}: switch {view.state}, but the books hold money: {row}"]
    return []


def _orphans(books: Books, by_rrn: dict[str, TransactionView]) -> list[str]:
    """A hold or posting the switch has no transaction for is a charge nobody can reverse."""
    return [
        f"orphan {row.state} at {row.issuer}: rrn {row.rrn} amount {row.amount}"
        for row in books.rows.values()
        if row.state in ("HELD", "POSTED") and row.rrn not in by_rrn
    ]


def _accounts(topology: Topology, books: Books, by_rrn: dict[str, TransactionView]) -> list[str]:
    """Per account: the books add up internally, and to what the switch recorded."""
    bad = []
    initial = {a.id: a.balance for i in topology.issuers for a in i.accounts}
    held: dict[str, int] = defaultdict(int)
    holds: dict[str, int] = defaultdict(int)
    net_posted: dict[str, int] = defaultdict(int)
    switch_held: dict[str, int] = defaultdict(int)
    switch_posted: dict[str, int] = defaultdict(int)
    for row in books.rows.values():
        if row.account_id is None:
            continue
        if row.state == "HELD":
            held[row.account_id] += row.amount
            holds[row.account_id] += 1
            view = by_rrn.get(row.rrn)
            if view is not None and view.state in HOLDING_STATES:
                switch_held[row.account_id] += view.amount.minor_units
        net_posted[row.account_id] += row.posted - row.refunded
        view = by_rrn.get(row.rrn)
        if row.state == "POSTED" and view is not None and view.state in ("CAPTURED", "SETTLED"):
            refunded = view.refunded.minor_units if view.refunded else 0
            switch_posted[row.account_id] += view.captured.minor_units - refunded
    for acct in books.accounts.values():
        if acct.held != held[acct.id] or acct.open_holds != holds[acct.id]:
            bad.append(f"account {acct.id}: held {acct.held}/{acct.open_holds} holds, "
                       f"rows say {held[acct.id]}/{holds[acct.id]}")  # fmt: skip
        if acct.balance != initial[acct.id] - net_posted[acct.id]:
            bad.append(f"account {acct.id}: balance {acct.balance}, "
                       f"expected {initial[acct.id] - net_posted[acct.id]}")  # fmt: skip
        if held[acct.id] != switch_held[acct.id] or net_posted[acct.id] != switch_posted[acct.id]:
            bad.append(f"account {acct.id}: books held {held[acct.id]} posted "
                       f"{net_posted[acct.id]}, switch says {switch_held[acct.id]} "
                       f"and {switch_posted[acct.id]}")  # fmt: skip
    return bad
