"""A whole settlement day end to end, every node a real process, once per store backend.

The day (seeded, so every run is the same day): sales on three terminals of three merchants
in EUR, USD, JPY and KWD, full and partial captures, voids, one sale left authorized only, a
restaurant tip captured above its hold within the tolerance, full and partial refunds; one
authorization whose answer the issuer drops (91, then reversed through the SAF queue) and one
stand-in sale while both acquirers are down (captured at once, advised when they are back,
then cleared and settled like any sale). Then each
terminal's CloseBatch (in balance), the manual cut-off (clearing, acquirer and issuer
settlement, reports, SETTLED), a chargeback the issuer raises on a settled sale
(``payswitch-chargeback``) and the switch ingests (``payswitch-dispute``), and the
reconciliation over the three sources (``payswitch-recon``).

The tests then check the ledger (zero per currency; each merchant's payable = captured -
refunded - fees - chargebacks), the issuers' books (each account = opening - posted +
credits, no hold left but the one authorized-only sale's), the reports, and that the
reconciliation of the clean day lists nothing. Finally each discrepancy type is injected into
a copy of one of the day's real sources and the reconciliation finds exactly it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import random
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from issuer.books import Books as BookFile
from payswitch.settlement.fees import fee_for
from payswitch.v1 import common_pb2, network_pb2, terminal_pb2
from payswitch.world.ports import write_topology
from switch.backoffice.ledger import accounts as ac
from switch.backoffice.ledger.ledger import Ledger
from switch.backoffice.recon.engine import reconcile
from switch.backoffice.recon.sources import load_reports, read_books, switch_transactions
from switch.domain.transactions import Transaction, TxState, TxType
from switch.store import open_store

from .clients import Books, RawTerminal, code, new_key, node_channels
from .conftest import (
    DEFAULT_TOPOLOGY,
    E2E_STORES,
    cassandra_keyspace,
    cassandra_node,
    drop_keyspace,
    injected,
    start_stack,
)

pytestmark = pytest.mark.e2e

SEED = 7_2026


@dataclass(frozen=True)
class Card:
    pan: str
    expiry: str
    currency: str
    issuer: str
    account: str
    scheme: str  # the fee table's and the store's name
    proto: int  # common_pb2.CardScheme

    @property
    def low_high(self) -> tuple[int, int]:
        """A sale's amount range in minor units (small enough for every account)."""
        return {"JPY": (300, 9_000), "KWD": (1_000, 40_000), "USD": (500, 6_000)}.get(
            self.currency, (500, 9_000)
        )


VISA = Card(
    "4111111111111111", "2812", "EUR", "bank-a", "A-1001", "visa", common_pb2.CARD_SCHEME_VISA
)
MC_EUR = Card(
    "5555555555554444",
    "2906",
    "EUR",
    "bank-b",
    "B-2001",
    "mastercard",
    common_pb2.CARD_SCHEME_MASTERCARD,
)
MC_USD = Card(
    "2223000048400011",
    "2906",
    "USD",
    "bank-b",
    "B-2002",
    "mastercard",
    common_pb2.CARD_SCHEME_MASTERCARD,
)
AMEX = Card(
    "378282246310005", "2903", "EUR", "bank-c", "C-3001", "amex", common_pb2.CARD_SCHEME_AMEX
)
JCB = Card("3530111333300000", "2903", "JPY", "bank-c", "C-3002", "jcb", common_pb2.CARD_SCHEME_JCB)
UP_KWD = Card(
    "6200000000000104",
    "2903",
    "KWD",
    "bank-c",
    "C-3003",
    "unionpay",
    common_pb2.CARD_SCHEME_UNIONPAY,
)
assert (
    VISA.proto == common_pb2.CARD_SCHEME_VISA and MC_EUR.proto == common_pb2.CARD_SCHEME_MASTERCARD
)
assert AMEX.proto == common_pb2.CARD_SCHEME_AMEX and JCB.proto == common_pb2.CARD_SCHEME_JCB
assert UP_KWD.proto == common_pb2.CARD_SCHEME_UNIONPAY

# terminal -> (merchant, MCC, cards it takes, number of sales); actions cycle per terminal.
SHOPS = {
    "T-0001": ("M-GROCER", "5411", (VISA, MC_EUR, MC_USD, JCB, UP_KWD), 16),
    "T-0003": ("M-FUEL", "5541", (VISA, AMEX, JCB, UP_KWD), 7),
    "T-0004": ("M-BISTRO", "5812", (VISA, MC_EUR), 4),
}
ACTIONS = ("full", "partial", "full", "void", "full", "partial", "full")
SAF = {
    "max_attempts": 100,
    "base_delay_s": 0.2,
    "max_delay_s": 1.0,
    "attempt_timeout_s": 1.0,
    "lease_s": 3.0,
    "poll_interval_s": 0.2,
    "scan_interval_s": 1.0,
}


@dataclass
class Sale:
    terminal: str
    merchant: str
    mcc: str
    card: Card
    tx_id: str
    rrn: str
    amount: int
    action: str = "approved"
    captured: int = 0
    refunded: int = 0


@dataclass
class Refund:
    sale: Sale
    tx_id: str
    amount: int


@dataclass
class Day:
    stack: object
    run_dir: Path
    directory: Path  # the settlement directory shared by switch, acquirers, issuers
    sales: list[Sale] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    timed_out: Sale | None = None
    stood_in: Sale | None = None
    chargeback: dict = field(default_factory=dict)
    closes: dict[str, terminal_pb2.CloseBatchResponse] = field(default_factory=dict)
    ours: dict[str, list[terminal_pb2.BatchTotal]] = field(default_factory=dict)
    before_ingest: list[tuple[str, str, str]] = field(default_factory=list)
    recon_exit: int = -1
    recon_out: list[dict] = field(default_factory=list)
    opening: dict[tuple[str, str], int] = field(default_factory=dict)

    def books_paths(self) -> list[Path]:
        return sorted((self.run_dir / "books").glob("*.db"))

    def settled_sales(self) -> list[Sale]:
        return [s for s in self.sales if s.captured]


async def until(check, timeout: float = 60.0, every: float = 0.2):
    """Poll ``check`` (async, truthy when done) with a bounded deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(every)


def cli(command: str, *argv: str) -> subprocess.CompletedProcess:
    """One of the operators' commands (the venv's console script), as a process of its own."""
    script = Path(sys.executable).parent / command
    return subprocess.run([str(script), *argv], capture_output=True, text=True, timeout=120)


async def _set_issuer_faults(stack, issuer_id: str, **faults: float) -> None:
    """Rewrite the issuer's fault rates in the topology file and restart only it (its books
    are a file in the run directory and survive)."""
    doc = tomllib.loads(stack.topology_path.read_text())
    for issuer in doc["issuers"]:
        if issuer["id"] == issuer_id:
            for name in ("error_rate", "timeout_rate", "drop_response_rate"):
                issuer.pop(name, None)
            issuer.update(faults)
    write_topology(doc, stack.topology_path)
    await asyncio.to_thread(stack.restart, issuer_id)


async def _run_day(stack, run_dir: Path) -> Day:
    day = Day(stack, run_dir, run_dir / "settlement")
    for issuer in stack.topology.issuers:
        for account in issuer.accounts:
            day.opening[(issuer.id, account.id)] = account.balance
    rng = random.Random(SEED)
    # one secure element per terminal: a device is bound to the terminal that first uses it
    terms = {t: RawTerminal.connect(stack, await injected(), t, SHOPS[t][0]) for t in SHOPS}
    try:
        await _online(day, terms, rng)
        await _timed_out(day, terms["T-0001"])
        await _stand_in(day, terms["T-0001"])
        await _close_batches(day, terms)
        await _cutoff(day, terms)
        await _chargeback(day)
        await _reconcile(day)
    finally:
        for t in terms.values():
            await t.channel.close()
    return day


async def _online(day: Day, terms: dict[str, RawTerminal], rng: random.Random) -> None:
    for terminal, (merchant, mcc, cards, count) in SHOPS.items():
        pos = terms[terminal]
        for i in range(count):
            card = VISA if i == 0 else rng.choice(cards)  # the first: the chargeback's sale
            amount = rng.randrange(*card.low_high)
            auth = await pos.pay(card.pan, amount, card.currency, card.expiry)
            assert code(auth) == "00", (terminal, card.pan[:6], code(auth), auth.message)
            sale = Sale(terminal, merchant, mcc, card, auth.transaction_id, auth.rrn, amount)
            day.sales.append(sale)
            sale.action = "full" if i == 0 else ACTIONS[i % len(ACTIONS)]
            if terminal == "T-0001" and i == count - 1:
                sale.action = "approved"  # authorized only: its hold stays
            if terminal == "T-0004" and i == 1:
                sale.action = "tip"
            await _act(pos, sale, rng)
    # Refunds: one full, two partial (one of them twice on the same sale), on captured sales.
    # Not the tip: the issuer posts a capture above the hold only at clearing and declines
    # (12) a refund of a sale it has not posted yet.
    captured = [s for s in day.sales[1:] if s.captured and s.action != "tip"]
    full, part, twice = rng.sample(captured, 3)
    for sale, amount in ((full, full.captured), (part, part.captured // 3 or 1)):
        await _refund(day, terms[sale.terminal], sale, amount)
    for _ in range(2):
        await _refund(day, terms[twice.terminal], twice, max(1, twice.captured // 4))


async def _act(pos: RawTerminal, sale: Sale, rng: random.Random) -> None:
    cur = sale.card.currency
    if sale.action == "void":
        assert code(await pos.void(sale.tx_id)) == "00"
        return
    if sale.action == "approved":
        return
    minor = {
        "full": sale.amount,
        "partial": rng.randrange(max(1, sale.amount // 3), sale.amount),
        "tip": sale.amount * 115 // 100,  # 15 % above the hold: within the 20 % tolerance
    }[sale.action]
    resp = await pos.capture(sale.tx_id, minor, cur)
    assert code(resp) == "00", (sale.action, resp.message)
    sale.captured = minor


async def _refund(day: Day, pos: RawTerminal, sale: Sale, amount: int) -> None:
    resp = await pos.refund(sale.tx_id, amount, sale.card.currency)
    assert code(resp) == "00", resp.message
    sale.refunded += amount
    day.refunds.append(Refund(sale, resp.transaction.transaction_id, amount))


async def _timed_out(day: Day, pos: RawTerminal) -> None:
    """bank-a acts on the authorization but its answer never comes back: 91, the hold placed
    and then released by the reversal the SAF queue keeps sending until bank-a answers."""
    stack = day.stack
    await _set_issuer_faults(stack, "bank-a", drop_response_rate=1.0)
    try:
        auth = await pos.authorize(pos.auth_request(VISA.pan, 2_345, "EUR", VISA.expiry), 1.0)
        assert code(auth) == "91"
    finally:
        await _set_issuer_faults(stack, "bank-a")
    day.timed_out = Sale("T-0001", "M-GROCER", "5411", VISA, auth.transaction_id, auth.rrn, 2_345)

    async def reversed_():
        return (await pos.get(auth.transaction_id)).state == terminal_pb2.TRANSACTION_STATE_REVERSED

    await until(reversed_)


async def _stand_in(day: Day, pos: RawTerminal) -> None:
    """Both acquirers down: the switch approves within its stand-in limits and the merchant
    captures the sale at once (a local completion, before the advice). When the acquirers
    are back the advice reaches bank-a, which holds it; the transaction stays CAPTURED and is
    then a sale of the day like any other: in the batch, cleared, posted against the advice's
    hold, settled with fees."""
    stack = day.stack
    stack.kill("acq-alpha")
    stack.kill("acq-beta")
    try:
        auth = await pos.pay(VISA.pan, 3_000, "EUR", VISA.expiry)
        assert code(auth) == "00" and auth.stood_in, auth.message
        captured = await pos.capture(auth.transaction_id, 3_000, "EUR")
        assert code(captured) == "00", captured.message
    finally:
        await asyncio.to_thread(stack.restart, "acq-alpha")
        await asyncio.to_thread(stack.restart, "acq-beta")
    sale = Sale("T-0001", "M-GROCER", "5411", VISA, auth.transaction_id, auth.rrn, 3_000)
    sale.action, sale.captured = "full", 3_000
    day.stood_in = sale
    day.sales.append(sale)
    channels = node_channels(stack)
    issuers = Books(channels)

    async def advised():
        try:
            hold = await issuers.hold("bank-a", auth.rrn)
        except grpc.aio.AioRpcError:
            return False  # the advice has not reached bank-a yet
        return hold.state == network_pb2.HOLD_STATE_HELD and hold.amount == 3_000

    try:
        await until(advised)
    finally:
        for ch in channels.values():
            await ch.close()
    assert (await pos.get(auth.transaction_id)).state == terminal_pb2.TRANSACTION_STATE_CAPTURED


def _terminal_totals(day: Day, terminal: str) -> list[terminal_pb2.BatchTotal]:
    """What the terminal counted itself: captures (captured amounts), refunds, voids."""
    lines: dict[tuple[str, int], terminal_pb2.BatchTotal] = {}

    def line(card: Card) -> terminal_pb2.BatchTotal:
        key = (card.currency, card.proto)
        if key not in lines:
            lines[key] = terminal_pb2.BatchTotal(currency=card.currency, scheme=card.proto)
        return lines[key]

    for s in day.sales:
        if s.terminal != terminal:
            continue
        if s.captured:
            line(s.card).sale_count += 1
            line(s.card).sale_minor += s.captured
        elif s.action == "void":
            line(s.card).void_count += 1
    for r in day.refunds:
        if r.sale.terminal == terminal:
            line(r.sale.card).refund_count += 1
            line(r.sale.card).refund_minor += r.amount
    return sorted(lines.values(), key=lambda t: (t.currency, t.scheme))


async def _close_batches(day: Day, terms: dict[str, RawTerminal]) -> None:
    for terminal, pos in terms.items():
        ours = _terminal_totals(day, terminal)
        day.ours[terminal] = ours
        day.closes[terminal] = await pos.stub.CloseBatch(
            pos.sign_op(
                terminal_pb2.CloseBatchRequest(
                    idempotency_key=new_key(),
                    terminal_id=terminal,
                    merchant_id=pos.merchant_id,
                    terminal_totals=ours,
                )
            ),
            timeout=5.0,
        )


async def _cutoff(day: Day, terms: dict[str, RawTerminal]) -> None:
    """The operator's manual cut-off (SIGUSR1); done when every capture and refund is SETTLED
    and the ledger's receivables are back to zero (the run's last postings)."""
    stack = day.stack
    stack.kill(stack.topology.switch.id, signal.SIGUSR1, wait=False)
    expected = [(s.terminal, s.tx_id) for s in day.settled_sales()]
    expected += [(r.sale.terminal, r.tx_id) for r in day.refunds]

    async def settled():
        for terminal, tx_id in expected:
            if (await terms[terminal].get(tx_id)).state != terminal_pb2.TRANSACTION_STATE_SETTLED:
                return False
        async with open_store(stack.store_url) as store:
            ledger = Ledger(store)
            for cur in ("EUR", "USD", "JPY", "KWD"):
                balances = await ledger.balances(cur)
                if any(v for a, v in balances.items() if a.startswith("acquirer_receivable:")):
                    return False
        return True

    await until(settled, timeout=90, every=0.5)


async def _chargeback(day: Day) -> None:
    """bank-a charges back part of the first (VISA, fully captured) sale; the switch ingests."""
    sale = day.sales[0]
    amount = sale.captured // 2
    books = str(day.run_dir / "books" / "bank-a.db")
    raised = cli(
        "payswitch-chargeback", "--books", books, "--dir", str(day.directory),
        "--issuer", "bank-a", "raise", "--rrn", sale.rrn, "--reason", "10.4",
        "--amount", f"{amount // 100}.{amount % 100:02d}",
    )  # fmt: skip
    assert raised.returncode == 0, raised.stderr
    record = json.loads(raised.stdout)
    assert (record["amount_minor"], record["currency"]) == (amount, "EUR")
    day.chargeback = {"sale": sale, "amount": amount, "id": record["chargeback_id"]}
    # Before the switch records it, the reconciliation sees the issuer's chargeback alone.
    day.before_ingest = await _found(day, await _sources(day))
    ingested = cli(
        "payswitch-dispute", "--store", day.stack.store_url, "ingest", "--dir", str(day.directory)
    )
    assert ingested.returncode == 0, ingested.stderr + ingested.stdout


async def _reconcile(day: Day) -> None:
    ran = cli(
        "payswitch-recon", "--store", day.stack.store_url, "run", "--dir", str(day.directory),
        "--books", *map(str, day.books_paths()), "--topology", str(day.stack.topology_path),
        "--json",
    )  # fmt: skip
    assert ran.returncode in (0, 1), ran.stderr
    day.recon_exit = ran.returncode
    day.recon_out = json.loads(ran.stdout)


@pytest.fixture(scope="module", params=E2E_STORES)
async def day(request, tmp_path_factory, hsm_token):
    run_dir = tmp_path_factory.mktemp(f"day-{request.param}")
    keyspace = None
    store = "sqlite"
    if request.param == "cassandra":
        keyspace = await asyncio.to_thread(cassandra_keyspace, "e2e_day")
        host, name = keyspace
        store = f"cassandra://{host}:{cassandra_node.PORT}/{name}?replication=1"
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    doc["settlement"]["dir"] = str(run_dir / "settlement")
    doc["merchants"].append(
        {"id": "M-BISTRO", "name": "Harbour Bistro", "mcc": "5812", "acquirers": ["acq-alpha"]}
    )
    doc["terminals"].append({"id": "T-0004", "merchant": "M-BISTRO"})
    doc["saf"] = SAF
    doc["standin"]["advice_interval_s"] = 0.5
    stack = await asyncio.to_thread(start_stack, run_dir, doc, store=store)
    try:
        yield await _run_day(stack, run_dir)
    finally:
        await asyncio.to_thread(stack.stop)
        if keyspace is not None:
            await asyncio.to_thread(drop_keyspace, *keyspace)


# --- the sources, loaded (and copied) for the reconciliation engine ------------------------
@dataclass
class Sources:
    txs: list[Transaction]
    reports: list[dict]
    books: list[Path]
    disputes: list


async def _sources(day: Day, books: list[Path] | None = None) -> Sources:
    async with open_store(day.stack.store_url) as store:
        txs = await switch_transactions(store, math.inf)
        disputes = await store.disputes()
    reports = await asyncio.to_thread(load_reports, day.directory)
    return Sources(txs, reports, books or day.books_paths(), disputes)


async def _found(day: Day, src: Sources) -> list[tuple[str, str, str]]:
    issues = reconcile(
        src.txs,
        src.reports,
        read_books(src.books),
        cutoff=time.time(),
        fee_table=day.stack.topology.fees,
        disputes=src.disputes,
    )
    return [(i.type, i.kind, i.rrn) for i in issues]


def _copy_books(day: Day, into: Path) -> list[Path]:
    """A consistent copy of every issuer's books (SQLite backup: the WAL included)."""
    into.mkdir(parents=True, exist_ok=True)
    out = []
    for path in day.books_paths():
        target = into / path.name
        with closing(sqlite3.connect(path)) as src, closing(sqlite3.connect(target)) as dst:
            src.backup(dst)
        out.append(target)
    return out


# --- the day's outcome ------------------------------------------------------------------------
async def test_every_terminal_closed_in_balance(day: Day) -> None:
    assert set(day.closes) == set(SHOPS)
    for terminal, resp in day.closes.items():
        assert resp.in_balance and not resp.mismatches, (terminal, resp.mismatches)
        assert (
            sorted(resp.switch_totals, key=lambda t: (t.currency, t.scheme)) == day.ours[terminal]
        )
    currencies = {t.currency for r in day.closes.values() for t in r.switch_totals}
    assert currencies == {"EUR", "USD", "JPY", "KWD"}
    actions = {s.action for s in day.sales}
    assert {"full", "partial", "void", "tip", "approved"} <= actions
    assert any(r.amount == r.sale.captured for r in day.refunds)  # a full refund
    assert any(r.amount < r.sale.captured for r in day.refunds)  # partial ones


async def test_every_transaction_ended_where_the_day_put_it(day: Day) -> None:
    async with open_store(day.stack.store_url) as store:
        for s in day.sales:
            tx = await store.get_transaction(s.tx_id)
            want = {
                "void": TxState.VOIDED,
                "approved": TxState.APPROVED,
            }.get(s.action, TxState.SETTLED)
            assert tx.state is want, (s.action, tx.state)
            assert (tx.captured_minor, tx.refunded_minor) == (s.captured, s.refunded)
        for r in day.refunds:
            tx = await store.get_transaction(r.tx_id)
            assert (tx.type, tx.state, tx.amount_minor) == (
                TxType.REFUND,
                TxState.SETTLED,
                r.amount,
            )
        assert (await store.get_transaction(day.timed_out.tx_id)).state is TxState.REVERSED
        assert day.stood_in in day.sales  # the stand-in sale: SETTLED, checked above


async def test_ledger_balances_per_currency_and_merchant_payables(day: Day) -> None:
    fees = day.stack.topology.fees
    owed: dict[tuple[str, str], int] = defaultdict(int)  # (merchant, currency) -> payable
    for s in day.settled_sales():
        f = fee_for(fees, s.card.scheme, s.mcc, s.card.currency, s.captured)
        owed[(s.merchant, s.card.currency)] += s.captured - s.refunded - f.total_minor
    cb = day.chargeback
    owed[(cb["sale"].merchant, "EUR")] -= cb["amount"]
    async with open_store(day.stack.store_url) as store:
        ledger = Ledger(store)
        currencies = set(await ledger.currencies())
        assert currencies == {"EUR", "USD", "JPY", "KWD"}
        for cur in currencies:
            tb = await ledger.trial_balance(cur)
            assert tb.total == 0, cur
            for account, balance in tb.balances.items():
                assert type(balance) is int, (account, balance)
            payables = {a: -b for a, b in tb.balances.items() if a.startswith("merchant_payable:")}
            want = {ac.merchant_payable(m): v for (m, c), v in owed.items() if c == cur}
            assert payables == want, cur
    assert any(f for f in owed.values())


async def test_settlement_cash_is_the_reports_net_and_no_currency_is_mixed(day: Day) -> None:
    reports = load_reports(day.directory)
    net: dict[tuple[str, str], int] = defaultdict(int)
    by_tx = {s.tx_id: s for s in day.sales} | {r.tx_id: r.sale for r in day.refunds}
    for report in reports:
        for cur, t in report["totals"].items():
            assert all(type(v) is int for v in t.values()), t
            assert t["net_minor"] == t["gross_minor"] - t["fees_minor"]
            net[(report["acquirer_id"], cur)] += t["net_minor"]
        for e in report["entries"]:
            assert e["status"] == "SETTLED", e
            assert e["currency"] == by_tx[e["transaction_id"]].card.currency
            for k in ("amount_minor", "interchange_minor", "scheme_fee_minor"):
                assert type(e[k]) is int and e[k] >= 0, (k, e)
            if e["kind"] == "REFUND":
                assert e["interchange_minor"] == e["scheme_fee_minor"] == 0
    async with open_store(day.stack.store_url) as store:
        ledger = Ledger(store)
        for (acquirer, cur), value in net.items():
            assert await ledger.balance(ac.settlement_cash(acquirer), cur) == value


async def test_issuer_accounts_are_opening_minus_posted_plus_credits(day: Day) -> None:
    expected = dict(day.opening)
    held: dict[tuple[str, str], int] = defaultdict(int)
    for s in day.sales:
        key = (s.card.issuer, s.card.account)
        expected[key] += s.refunded - s.captured
        if s.action == "approved":
            held[key] += s.amount
    expected[(VISA.issuer, VISA.account)] += day.chargeback["amount"]  # the cardholder's credit
    channels = node_channels(day.stack)
    try:
        issuers = Books(channels)
        for (issuer, account), balance in expected.items():
            got = await issuers.account(issuer, account)
            assert (got.balance, got.held) == (balance, held[(issuer, account)]), account
        for s in day.sales:
            hold = await issuers.hold(s.card.issuer, s.rrn)
            if s.captured:
                assert (hold.state, hold.posted) == (network_pb2.HOLD_STATE_POSTED, s.captured)
            elif s.action == "void":
                assert (hold.state, hold.posted) == (network_pb2.HOLD_STATE_RELEASED, 0)
        hold = await issuers.hold("bank-a", day.timed_out.rrn)
        assert (hold.state, hold.posted) == (network_pb2.HOLD_STATE_RELEASED, 0)
    finally:
        for ch in channels.values():
            await ch.close()


async def test_the_clean_day_reconciles_with_no_issue(day: Day) -> None:
    """Only the chargeback shows before the switch ingests it (the issuer's alone); once
    ingested, the three sources agree: ``payswitch-recon run`` lists nothing and exits 0."""
    cb = day.chargeback
    assert day.before_ingest == [("MISSING_IN_SWITCH", "CHARGEBACK", cb["sale"].rrn)]
    assert (day.recon_exit, day.recon_out) == (0, [])


# --- each discrepancy injected into a copy of one real source --------------------------------
def _entry_of(reports: list[dict], rrn: str, kind: str = "CAPTURE") -> tuple[dict, dict]:
    for report in reports:
        for e in report["entries"]:
            if (e["rrn"], e["kind"]) == (rrn, kind):
                return report, e
    raise AssertionError(f"no {kind} entry for {rrn}")


def _plain(day: Day) -> Sale:
    """A settled sale without refund or chargeback, captured in full."""
    return next(s for s in day.sales[1:] if s.action == "full" and not s.refunded)


def _edit_books(paths: list[Path], issuer: str, *sql: tuple[str, tuple]) -> None:
    path = next(p for p in paths if p.stem == issuer)
    with closing(sqlite3.connect(path)) as db, db:
        for statement, args in sql:
            db.execute(statement, args)


async def _case_missing_in_switch(day, src, tmp):
    s = _plain(day)
    src.txs = [t for t in src.txs if t.id != s.tx_id]  # the switch lost the transaction
    return ("MISSING_IN_SWITCH", "CAPTURE", s.rrn)


async def _case_missing_at_acquirer(day, src, tmp):
    s = _plain(day)
    report, entry = _entry_of(src.reports, s.rrn)
    report["entries"].remove(entry)
    return ("MISSING_AT_ACQUIRER", "CAPTURE", s.rrn)


async def _case_missing_at_issuer(day, src, tmp):
    r = next(r for r in day.refunds if r.amount == r.sale.captured)
    rrn = next(t.rrn for t in src.txs if t.id == r.tx_id)
    _edit_books(
        src.books,
        r.sale.card.issuer,
        ("DELETE FROM advices WHERE kind = 'refund' AND rrn = ?", (rrn,)),
    )
    return ("MISSING_AT_ISSUER", "REFUND", rrn)


async def _case_deleted_issuer_row(day, src, tmp):
    s = _plain(day)
    _edit_books(src.books, s.card.issuer, ("DELETE FROM authorizations WHERE rrn = ?", (s.rrn,)))
    return ("MISSING_AT_ISSUER", "CAPTURE", s.rrn)


async def _case_amount_mismatch(day, src, tmp):
    s = _plain(day)
    _, entry = _entry_of(src.reports, s.rrn)
    entry["amount_minor"] += 1
    return ("AMOUNT_MISMATCH", "CAPTURE", s.rrn)


async def _case_duplicate(day, src, tmp):
    s = _plain(day)
    report, entry = _entry_of(src.reports, s.rrn)
    report["entries"].append(copy.deepcopy(entry))
    return ("DUPLICATE", "CAPTURE", s.rrn)


async def _case_late_presentment(day, src, tmp):
    """The presentment moves to a report settled ten days after the authorization: past the
    issuer's 7-day hold expiry."""
    s = _plain(day)
    report, entry = _entry_of(src.reports, s.rrn)
    report["entries"].remove(entry)
    tx = next(t for t in src.txs if t.id == s.tx_id)
    late = dict(copy.deepcopy(report), file_id=report["file_id"] + "-late", entries=[entry])
    late["settled_at"] = tx.created_at + 10 * 86_400
    src.reports.append(late)
    return ("LATE_PRESENTMENT", "CAPTURE", s.rrn)


async def _case_orphan_reversal(day, src, tmp):
    path = next(p for p in src.books if p.stem == "bank-a")
    books = BookFile(path)
    try:
        books.reverse("999999999999")  # a reversal of an authorization the switch never had
    finally:
        books.close()
    return ("ORPHAN_REVERSAL", "REVERSAL", "999999999999")


async def _case_rejected(day, src, tmp):
    s = _plain(day)
    _, entry = _entry_of(src.reports, s.rrn)
    entry["status"], entry["reason"] = "REJECTED", "NO_AUTHORIZATION"
    return ("REJECTED_BY_ACQUIRER", "CAPTURE", s.rrn)


async def _case_fee_mismatch(day, src, tmp):
    s = _plain(day)
    _, entry = _entry_of(src.reports, s.rrn)
    entry["interchange_minor"] += 1
    return ("FEE_MISMATCH", "CAPTURE", s.rrn)


async def _case_void_never_released(day, src, tmp):
    s = next(s for s in day.sales if s.action == "void")
    _edit_books(
        src.books, s.card.issuer,
        ("UPDATE authorizations SET state = 'HELD' WHERE rrn = ?", (s.rrn,)),
        ("DELETE FROM advices WHERE kind = 'reversal' AND original_rrn = ?", (s.rrn,)),
    )  # fmt: skip
    return ("MISSING_AT_ISSUER", "REVERSAL", s.rrn)


async def _case_chargeback_not_recorded(day, src, tmp):
    src.disputes = [d for d in src.disputes if d.dispute_id != day.chargeback["id"]]
    return ("MISSING_IN_SWITCH", "CHARGEBACK", day.chargeback["sale"].rrn)


async def _case_stand_in_lost_by_issuer(day, src, tmp):
    """The issuer lost the stand-in's advice and its posting: the captured stand-in sale is
    a presentment the issuer does not show posted."""
    rrn = day.stood_in.rrn
    _edit_books(
        src.books, "bank-a",
        ("DELETE FROM advices WHERE kind = 'standin' AND rrn = ?", (rrn,)),
        ("DELETE FROM authorizations WHERE rrn = ?", (rrn,)),
    )  # fmt: skip
    return ("MISSING_AT_ISSUER", "CAPTURE", rrn)


CASES = {
    "missing_in_switch": _case_missing_in_switch,
    "missing_at_acquirer": _case_missing_at_acquirer,
    "missing_at_issuer_refund_advice": _case_missing_at_issuer,
    "missing_at_issuer_deleted_row": _case_deleted_issuer_row,
    "amount_mismatch": _case_amount_mismatch,
    "duplicate": _case_duplicate,
    "late_presentment": _case_late_presentment,
    "orphan_reversal": _case_orphan_reversal,
    "rejected_by_acquirer": _case_rejected,
    "fee_mismatch": _case_fee_mismatch,
    "void_never_released": _case_void_never_released,
    "chargeback_not_recorded": _case_chargeback_not_recorded,
    "stand_in_lost_by_issuer": _case_stand_in_lost_by_issuer,
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_an_injected_discrepancy_is_found_exactly(day: Day, case: str, tmp_path) -> None:
    src = await _sources(day, _copy_books(day, tmp_path / "books"))
    assert await _found(day, src) == []  # the copies agree before the injection
    want = await CASES[case](day, src, tmp_path)
    assert await _found(day, src) == [want]


def test_the_sources_are_untouched_by_the_injections(day: Day) -> None:
    """The cases edit copies: the real reports still parse and the real books still hold
    every sale of the day (so the other tests are independent of the order)."""
    reports = load_reports(day.directory)
    rrns = {e["rrn"] for r in reports for e in r["entries"]}
    assert {s.rrn for s in day.settled_sales()} <= rrns
    books = read_books(day.books_paths())
    assert {s.rrn for s in day.settled_sales()} <= set(books.auths)
