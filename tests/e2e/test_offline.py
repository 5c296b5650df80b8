"""Offline payments end to end, on real processes and both stores (the session stack): the
issuers' offline keys made in their tokens and published (``payswitch-offline keys``); the
real switch process answers syncs with that trust over mTLS; terminals go offline and take
payments from several cards whose keys sit in a token; one card is cloned and spent at two
terminals; a terminal is killed with ``kill -9`` right after an approval; a tampered journal
entry and a forged spend are uploaded; an upload is cut halfway and resumed. After the syncs:
every honest payment accepted once, every double spend and tampering a case with evidence."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hsm.pool import HsmPool
from hsm.testing import UNIT, party_config
from issuer.offline_books import OfflineBooks
from payswitch.offline import ecdsa, sale_ids
from payswitch.offline.formats import Allowance, Signed, Spend
from payswitch.v1 import network_pb2, offline_pb2, offline_pb2_grpc
from switch.backoffice.ledger.ledger import Ledger
from switch.backoffice.recon.engine import reconcile
from switch.backoffice.recon.sources import load_reports, read_books, switch_transactions
from switch.domain.saf import SafKind, item_id
from switch.domain.transactions import TxState
from switch.store import open_store
from terminals.offline import OfflineTerminal
from terminals.offline_device import PayerDevice, TokenSigner
from terminals.offline_sync import sync

from .clients import switch_channel

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]

_CHILD = r"""
import sys
from terminals.offline import OfflineTerminal
from payswitch.offline.formats import Signed
t = OfflineTerminal(sys.argv[1], sys.argv[2], "M-GROCER")
a = Signed(bytes.fromhex(sys.argv[3]), bytes.fromhex(sys.argv[4]))
s = Signed(bytes.fromhex(sys.argv[5]), bytes.fromhex(sys.argv[6]))
print("approved", t.approve(a, s, float(sys.argv[7])).seq, flush=True)
sys.stdin.read()
"""


async def _grant(stub, signer: TokenSigner, name: str, issuer: str = "bank-a") -> Signed:
    """The device asks its issuer for an allowance through the switch (online, before)."""
    answer = await stub.GrantOfflineAllowance(
        offline_pb2.GrantOfflineAllowanceRequest(
            issuer=issuer,
            account_id={"bank-a": "A-1001", "bank-b": "B-2001"}[issuer],
            card_token=f"tok-e2e-{name}",
            device_public_key=await asyncio.to_thread(signer.public_key),
            currency="EUR",
            cumulative_cap=12_000,
            per_tx_cap=5_000,
            count_cap=8,
        )
    )
    return Signed(answer.allowance, answer.allowance_signature)


def _offline_period(run: Path, now: int, wallets: list[tuple[TokenSigner, Signed]]) -> dict:
    """Everything that happens with no switch: runs in a worker thread (blocking SQLite and
    PKCS#11)."""
    t1 = OfflineTerminal(run / "t1.db", "T-0001", "M-GROCER")
    t2 = OfflineTerminal(run / "t2.db", "T-0002", "M-GROCER")
    devices = []
    for i, (signer, allowance) in enumerate(wallets):
        d = PayerDevice(run / f"wallet{i}.db", signer)
        d.load(allowance)
        devices.append(d)
    paid: list[Signed] = []  # every spend the network pays (the clone's too: the cardholder's)
    for n in range(6):
        d, t = devices[n % 3], (t1, t2)[n % 2]
        s = d.spend(300 + n, "EUR", "M-GROCER", t.terminal_id, now)
        t.approve(d.allowance(), s, now)
        paid.append(s)
    # The clone: wallet and key copied, the same counter spent at both terminals.
    victim = devices[0]
    victim._conn.execute("PRAGMA wal_checkpoint(FULL)")
    (run / "clone.db").write_bytes((run / "wallet0.db").read_bytes())
    clone = PayerDevice(run / "clone.db", victim.signer)
    s_orig = victim.spend(700, "EUR", "M-GROCER", "T-0001", now)
    s_clone = clone.spend(650, "EUR", "M-GROCER", "T-0002", now)
    t1.approve(victim.allowance(), s_orig, now)
    t2.approve(clone.allowance(), s_clone, now)
    paid += [s_orig, s_clone]
    for n in range(6):
        if n % 3:
            pass
    # kill -9 right after an approval (terminal T-0001, its journal in another process).
    d = devices[1]
    s_kill = d.spend(450, "EUR", "M-GROCER", "T-0001", now)
    t1.close()
    a = d.allowance()
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(run / "t1.db"), "T-0001", a.body.hex(),
         a.signature.hex(), s_kill.body.hex(), s_kill.signature.hex(), str(now)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert child.stdout is not None and child.stdout.readline().startswith("approved")
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    paid.append(s_kill)
    # A tampered entry (T-0002) and a forged spend (T-0001).
    d2 = devices[2]
    s_t = d2.spend(500, "EUR", "M-GROCER", "T-0002", now)
    t2.approve(d2.allowance(), s_t, now)
    t2._conn.execute("UPDATE journal SET spend = ? WHERE counter = ? AND allowance_id = ?",
                     (s_t.body.replace(b"|500|", b"|5000|"), Spend.parse(s_t.body).counter,
                      Spend.parse(s_t.body).allowance_id))  # fmt: skip
    a2 = Allowance.parse(d2.allowance().body)
    forged = Spend(a2.allowance_id, 7, 900, "EUR", "M-GROCER", "T-0001", now, bytes(32))
    t1b = OfflineTerminal(run / "t1.db", "T-0001", "M-GROCER")
    t1b._conn.execute(
        "INSERT INTO journal (allowance, allowance_sig, spend, spend_sig, allowance_id, counter, "
        "card_token, amount, currency, trust_version, approved_at) "
        "VALUES (?, ?, ?, ?, ?, 7, 'tok-card2', 900, 'EUR', 1, ?)",
        (d2.allowance().body, d2.allowance().signature, forged.canonical(),
         ecdsa.SoftwareKey().sign_digest(forged.digest()), a2.allowance_id, now),
    )  # fmt: skip
    return {
        "paid": [(Spend.parse(x.body).digest().hex(), Spend.parse(x.body).amount) for x in paid],
        "unpaid": [
            Spend.parse(s_t.body.replace(b"|500|", b"|5000|")).digest().hex(),
            forged.digest().hex(),
        ],
        "t1": t1b,
        "t2": t2,
        "kill_allowance": Spend.parse(s_kill.body).allowance_id,
        "clone_allowance": Allowance.parse(victim.allowance().body).allowance_id,
    }


async def test_offline_end_to_end(stack, books, tmp_path: Path) -> None:
    await _ensure_trust(stack)
    ch1 = switch_channel(stack, "T-0001")
    ch2 = switch_channel(stack, "T-0002")
    try:
        stub1 = offline_pb2_grpc.OfflineServiceStub(ch1)
        stub2 = offline_pb2_grpc.OfflineServiceStub(ch2)
        t1 = OfflineTerminal(tmp_path / "t1.db", "T-0001", "M-GROCER")
        t2 = OfflineTerminal(tmp_path / "t2.db", "T-0002", "M-GROCER")
        await sync(stub1, t1)  # online: trust and limits from the real switch
        await sync(stub2, t2)
        assert ("bank-a", 1) in t1.trust().keys and t1.limits().floor_limit > 0
        t1.close()
        t2.close()
        device_pool = HsmPool(party_config(UNIT))  # the devices' secure elements
        wallets = []
        for i in range(3):
            owner = f"device-e2e-{os.urandom(3).hex()}-{i}"
            signer = await asyncio.to_thread(TokenSigner, device_pool, owner)
            wallets.append((signer, await _grant(stub1, signer, f"card{i}")))
        got = await asyncio.to_thread(_offline_period, tmp_path, int(time.time()), wallets)
        t1, t2 = got["t1"], got["t2"]
        # Back online: T-0001's upload cut after three entries, then resumed; T-0002 twice.
        cut = await sync(stub1, t1, stop_after=3)
        assert (cut.sent, cut.settled_through) == (3, 3)
        rest = await sync(stub1, t1)
        r2 = await sync(stub2, t2)
        again = await sync(stub2, t2)
        assert again.sent == 0
        assert rest.settled_through == t1.count() and r2.settled_through == t2.count()
        assert cut.accepted + rest.accepted + r2.accepted == 8  # 6 honest, clone pair, kill -9
        assert cut.flagged + rest.flagged + r2.flagged == 3  # duplicate, tampered, forged
    finally:
        await ch1.close()
        await ch2.close()
    async with open_store(stack.store_url) as store:
        cases = [
            c for c in await store.offline_cases()
            if c.terminal_id in ("T-0001", "T-0002") and "e2e" in c.evidence
        ]  # fmt: skip
        problems = sorted(p for c in cases for p in c.problems)
        assert problems == ["bad_device_signature", "bad_device_signature", "duplicate_counter"]
        allowances = {c.allowance_id for c in cases}
        dup = next(c for c in cases if "duplicate_counter" in c.problems)
        assert dup.allowance_id == got["clone_allowance"] and dup.liability == "cardholder"
        for c in cases:
            if "bad_device_signature" in c.problems:
                assert c.liability == "merchant" and not c.paid
        claims = await store.offline_claims(got["clone_allowance"])
        assert [c.counter for c in claims] == [1, 2, 3]
    # The advices go through the switch's store-and-forward queue, after the uploads.
    await _advices_delivered(stack, [d for d, _ in got["paid"]])
    # The issuer's offline books: every accepted spend posted once, from the hold.
    issuers = books
    books = OfflineBooks(Path(stack.books_dir) / "bank-a.offline-books.sqlite")
    try:
        clone = books.state(got["clone_allowance"])
        assert clone is not None and clone.cap == 12_000
        assert clone.used == 300 + 303 + 700 + 650 and clone.charged == 0
        assert books.state(got["kill_allowance"]).used == 301 + 304 + 450
    finally:
        books.close()
    assert allowances
    await _cutoff_clears_offline_sales(stack, issuers, got["paid"], got["unpaid"])
    await _the_clone_case_disputed(stack, dup.case_id)
    forged = next(c for c in cases if "bad_device_signature" in c.problems)
    shown = json.loads(
        await asyncio.to_thread(
            _cli, "switch.cli.offline_cases", "--store", stack.store_url, "show", forged.case_id
        )
    )
    assert shown["sale"] is None and shown["disputes"] == []  # never paid: nothing to dispute


def _issuer_books(folder: Path):
    """The issuers' main books (not their offline books), as reconciliation reads them."""
    return read_books(p for p in sorted(folder.glob("*.db")) if ".offline." not in p.name)


async def _until(check, timeout: float = 90.0, every: float = 0.2) -> None:
    """Poll ``check`` until it holds (the cut-off runs in the switch process)."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(every)


async def _cutoff_clears_offline_sales(stack, issuers, paid, unpaid) -> None:
    """After the syncs, the operator's cut-off (SIGUSR1): every paid spend is a sale that
    was presented to its issuer through the acquirer, settled, posted in the ledger and
    reconciled, exactly once; the merchant's frauds are no sale at all."""
    stack.kill(stack.topology.switch.id, signal.SIGUSR1, wait=False)
    async with open_store(stack.store_url) as store:

        async def settled() -> bool:
            for digest, _ in paid:
                tx = await store.get_transaction(sale_ids.transaction_id_of_spend(digest))
                if tx is None or tx.state is not TxState.SETTLED:
                    return False
            return True

        await _until(settled)
        rrns = set()
        for digest, amount in paid:
            tx = await store.get_transaction(sale_ids.transaction_id_of_spend(digest))
            assert tx is not None and (tx.captured_minor, tx.currency) == (amount, "EUR")
            assert tx.rrn == sale_ids.rrn_of_spend(digest) and tx.entry_mode == "offline"
            rrns.add(tx.rrn)
            kinds = sorted(p.kind for p in await store.ledger_postings_for_rrn(tx.rrn))
            assert kinds == ["CAPTURE_PRESENTED", "CAPTURE_SETTLED"], (tx.rrn, kinds)
            hold = await issuers.hold("bank-a", tx.rrn)  # the issuer posted it, once
            assert (hold.state, hold.posted) == (network_pb2.HOLD_STATE_POSTED, amount)
        assert len(rrns) == len(paid)
        for digest in unpaid:
            assert await store.get_transaction(sale_ids.transaction_id_of_spend(digest)) is None
        ledger = Ledger(store)
        for cur in await ledger.currencies():
            assert (await ledger.trial_balance(cur)).total == 0, cur
        txs = await switch_transactions(store, math.inf)
        disputes = await store.disputes()
    directory = stack.topology.settlement.directory()
    reports = await asyncio.to_thread(load_reports, directory)
    settled_rrns = {e["rrn"] for r in reports for e in r["entries"] if e["status"] == "SETTLED"}
    assert rrns <= settled_rrns
    issuer_books = await asyncio.to_thread(_issuer_books, Path(stack.books_dir))
    issues = reconcile(
        txs, reports, issuer_books, cutoff=time.time(),
        fee_table=stack.topology.fees, disputes=disputes,
    )  # fmt: skip
    assert [(i.type, i.rrn) for i in issues if i.rrn in rrns] == []


async def _advices_delivered(stack, digests: list[str]) -> None:
    """Wait until each spend's OFFLINE_ADVICE item is acknowledged by its issuer."""
    async with open_store(stack.store_url) as store:

        async def done() -> bool:
            for digest in digests:
                tx_id = sale_ids.transaction_id_of_spend(digest)
                item = await store.saf_get(item_id(SafKind.OFFLINE_ADVICE, tx_id))
                assert item is not None and not item.dead, (digest, item)
                if not item.done:
                    return False
            return True

        await _until(done)


async def _ensure_trust(stack) -> None:
    """The issuers' offline keys and the switch's trust file (``payswitch-offline keys``), once
    per stack: the first offline test to run makes them."""
    run = Path(stack.run_dir)
    if not (run / "offline-trust.json").exists():
        await asyncio.to_thread(_offline_cli, run, "keys", "--topology", str(run / "topology.toml"))


async def test_upload_completes_while_the_issuer_is_down(stack, books, tmp_path: Path) -> None:
    """The issuer is unreachable during the sync: the upload still settles every entry (the
    advices wait in the switch's store-and-forward queue, the sales outside any batch), the
    issuer's books hold nothing yet; once it is back the queue delivers each advice once, and
    the cut-off clears, posts and reconciles the sales as usual."""
    await _ensure_trust(stack)
    ch = switch_channel(stack, "T-0002")
    try:
        stub = offline_pb2_grpc.OfflineServiceStub(ch)
        t = OfflineTerminal(tmp_path / "t.db", "T-0002", "M-GROCER")
        await sync(stub, t)
        signer = await asyncio.to_thread(
            TokenSigner, HsmPool(party_config(UNIT)), f"device-down-{os.urandom(3).hex()}"
        )
        allowance = await _grant(stub, signer, "down")
        device = PayerDevice(tmp_path / "w.db", signer)
        await asyncio.to_thread(device.load, allowance)
        now = int(time.time())
        paid = []
        for amount in (410, 420):
            s = await asyncio.to_thread(device.spend, amount, "EUR", "M-GROCER", "T-0002", now)
            t.approve(allowance, s, now)
            paid.append((Spend.parse(s.body).digest().hex(), amount))
        await asyncio.to_thread(stack.kill, "bank-a")
        try:
            up = await sync(stub, t)
            assert (up.accepted, up.flagged, up.settled_through) == (2, 0, t.count())
            again = await sync(stub, t)
            assert again.sent == 0  # nothing left in the journal's upload
        finally:
            await asyncio.to_thread(stack.restart, "bank-a")
    finally:
        await ch.close()
    allowance_id = Allowance.parse(allowance.body).allowance_id
    async with open_store(stack.store_url) as store:
        for digest, _ in paid:  # recorded with the claim, delivered later
            tx = await store.get_transaction(sale_ids.transaction_id_of_spend(digest))
            assert tx is not None and tx.state is TxState.CAPTURED
    await _advices_delivered(stack, [d for d, _ in paid])
    offline_books = OfflineBooks(Path(stack.books_dir) / "bank-a.offline-books.sqlite")
    try:
        held = offline_books.state(allowance_id)
        assert held is not None and (held.used, held.charged) == (410 + 420, 0)
    finally:
        offline_books.close()
    await _cutoff_clears_offline_sales(stack, books, paid, [])


def _cli(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", *argv], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def _the_clone_case_disputed(stack, case_id: str) -> None:
    """The cardholder disputes the clone's paid spend: bank-a charges back the case's sale
    through the existing flow, the switch ingests it, the case shows its dispute, and the
    merchant represents with the case's evidence."""
    store, directory = stack.store_url, str(stack.topology.settlement.directory())
    shown = json.loads(
        await asyncio.to_thread(_cli, "switch.cli.offline_cases", "--store", store, "show", case_id)
    )
    sale = shown["sale"]
    assert sale["state"] == "SETTLED" and shown["disputes"] == []
    amount = f"{sale['amount'] // 100}.{sale['amount'] % 100:02d}"
    await asyncio.to_thread(
        _cli, "issuer.chargebacks", "--books", str(Path(stack.books_dir) / "bank-a.db"),
        "--dir", directory, "--issuer", "bank-a", "raise", "--rrn", sale["rrn"],
        "--reason", "10.4", "--amount", amount,
    )  # fmt: skip
    await asyncio.to_thread(
        _cli, "switch.cli.disputes", "--store", store, "ingest", "--dir", directory
    )
    shown = json.loads(
        await asyncio.to_thread(_cli, "switch.cli.offline_cases", "--store", store, "show", case_id)
    )
    assert [(d["rrn"], d["state"]) for d in shown["disputes"]] == [(sale["rrn"], "CHARGEBACK")]
    answered = json.loads(
        await asyncio.to_thread(
            _cli, "switch.cli.offline_cases", "--store", store, "represent", case_id
        )
    )
    assert [d["state"] for d in answered] == ["REPRESENTED"]
    assert case_id in answered[0]["evidence"] and "first_claim" in answered[0]["evidence"]


def _pos(stack, state: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "terminals.pos", "--switch", stack.address(stack.topology.switch.id),
         "--terminal", "T-0003", "--merchant", "M-FUEL", "--certs-dir", str(stack.certs_dir),
         "--state-dir", str(state), *argv],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


async def test_pos_wallet_offline_pay_and_sync(stack, tmp_path: Path) -> None:
    """The operator's view, each command its own process: a wallet granted through the real
    switch and issuer, a sale taken with the switch out of reach, then pos sync."""
    await _ensure_trust(stack)
    state = tmp_path / "pos"
    first = await asyncio.to_thread(_pos, stack, state, "sync")  # trust and limits, online
    assert first.returncode == 0, first.stderr
    granted = await asyncio.to_thread(
        _pos, stack, state, "wallet-grant", "w1", "60.00", "EUR",
        "--issuer", "bank-a", "--account", "A-1001", "--per-tx", "30.00",
    )  # fmt: skip
    assert granted.returncode == 0, granted.stderr
    assert "allowance al-" in granted.stdout
    # Offline: the switch address is a closed port; the sale needs none.
    offline = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "terminals.pos", "--switch", "127.0.0.1:9", "--terminal", "T-0003",
         "--merchant", "M-FUEL", "--state-dir", str(state), "offline-pay", "12.50", "EUR",
         "--wallet", "w1"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    assert (
        "APPROVED OFFLINE 12.50 EUR" in offline.stdout and "wallet left 47.50 EUR" in offline.stdout
    )
    synced = await asyncio.to_thread(_pos, stack, state, "sync")
    assert synced.returncode == 0, synced.stderr
    assert "1 sent, settled through 1 (1 accepted, 0 flagged, 0 repeated)" in synced.stdout


async def test_demo_offline_step_against_the_stack(stack, tmp_path: Path) -> None:
    """``make demo``'s offline step on the real processes: allowance, sale, sync settled."""
    from terminals.demo import Shift, _home_account
    from terminals.demo_plan import build_plan
    from terminals.sdk import Terminal, terminal_credentials

    await _ensure_trust(stack)
    plan = build_plan(stack.topology, terminal_id="T-0003")
    creds = terminal_credentials(stack.certs_dir, "T-0003")
    address = stack.address(stack.topology.switch.id)
    async with Terminal(address, "T-0003", "M-FUEL", credentials=creds) as terminal:
        await terminal.connect()
        shift = Shift(terminal, plan, cards=None)  # type: ignore[arg-type]
        shift.state_dir = tmp_path / "demo"
        shift.offline_account = _home_account(stack.topology, plan.home.pan)
        await shift.offline()
    got = {r.step: (r.got, r.detail) for r in shift.rows}
    assert [r.ok for r in shift.rows] == [True, True, True], got
    assert got["offline sync"][0] == "settled"


def _offline_cli(run: Path, *argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "payswitch.offline.keys_cli", "--trust",
         str(run / "offline-trust.json"), *argv],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.stdout


async def test_rotation_and_revocation_reach_terminals_at_sync(stack, tmp_path: Path) -> None:
    """payswitch-offline rotate and revoke-device while the switch runs: the next sync brings
    the new key (the previous one kept) and the revocation, and the terminal refuses the
    revoked device's spend."""
    from payswitch.offline.checks import device_id
    from terminals.offline import OfflineDecline

    run = Path(stack.run_dir)
    await asyncio.to_thread(_offline_cli, run, "keys", "--topology", str(run / "topology.toml"))
    ch = switch_channel(stack, "T-0001")
    try:
        stub = offline_pb2_grpc.OfflineServiceStub(ch)
        t = OfflineTerminal(tmp_path / "t.db", "T-0001", "M-GROCER")
        await sync(stub, t)
        before = sorted(v for i, v in t.trust().keys if i == "bank-b")
        await asyncio.to_thread(_offline_cli, run, "rotate", "bank-b")
        await sync(stub, t)
        after = sorted(v for i, v in t.trust().keys if i == "bank-b")
        assert after == [before[-1], before[-1] + 1]  # the current and the previous version
        signer = await asyncio.to_thread(
            TokenSigner, HsmPool(party_config(UNIT)), f"device-rev-{os.urandom(3).hex()}"
        )
        allowance = await _grant(stub, signer, "rev", issuer="bank-b")
        assert Allowance.parse(allowance.body).key_version == after[-1]
        device = PayerDevice(tmp_path / "w.db", signer)
        await asyncio.to_thread(device.load, allowance)
        now = int(time.time())
        first = await asyncio.to_thread(device.spend, 100, "EUR", "M-GROCER", "T-0001", now)
        t.approve(allowance, first, now)
        pub = await asyncio.to_thread(signer.public_key)
        await asyncio.to_thread(_offline_cli, run, "revoke-device", pub.hex())
        await sync(stub, t)
        assert device_id(pub) in t.trust().revoked_devices
        second = await asyncio.to_thread(device.spend, 100, "EUR", "M-GROCER", "T-0001", now)
        with pytest.raises(OfflineDecline, match="device_revoked"):
            t.approve(allowance, second, now)
    finally:
        await ch.close()
