"""End to end, real processes: batches, CloseBatch, the cut-off, clearing, issuer posting
and settlement. Its own stack on the default topology, with the settlement
directory in the test's run dir and bank-a's holds expiring after HOLD_TTL_S seconds; once on
each state store backend (SQLite, Cassandra)."""

from __future__ import annotations

import asyncio
import io
import re
import signal
import time
import tomllib

import grpc
import pytest

from payswitch.settlement.clearing import read_clearing_file
from payswitch.settlement.fees import fee_for
from payswitch.settlement.report import read_report
from payswitch.v1 import common_pb2, network_pb2, terminal_pb2
from payswitch.world.settlement import SettlementConfig
from switch.backoffice.ledger.ledger import Ledger
from switch.store import open_store
from terminals import demo, pos

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

HOLD_TTL_S = 3.0
VISA, JCB, UNIONPAY_KWD, MC = (
    "4111111111111111",
    "3530111333300000",
    "6200000000000104",
    "5555555555554444",
)
EXP = {VISA: "2812", JCB: "2903", UNIONPAY_KWD: "2903", MC: "2906"}


async def until(check, timeout: float = 30.0, every: float = 0.2):
    """Poll ``check`` (async, truthy when done) with a bounded deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(every)


@pytest.fixture(scope="module", params=E2E_STORES)
async def world(request, tmp_path_factory, hsm_token):
    run_dir = tmp_path_factory.mktemp(f"settle-{request.param}")
    keyspace = None
    store = "sqlite"
    if request.param == "cassandra":
        keyspace = await asyncio.to_thread(cassandra_keyspace, "e2e_settle")
        host, name = keyspace
        store = f"cassandra://{host}:{cassandra_node.PORT}/{name}?replication=1"
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    doc["settlement"]["dir"] = str(run_dir / "settlement")
    doc["settlement"]["auto_close"] = False  # cut-offs only when the test sends SIGUSR1
    # A restaurant (MCC 5812: tips within the capture tolerance) and its terminal.
    doc["merchants"].append(
        {"id": "M-BISTRO", "name": "Harbour Bistro", "mcc": "5812", "acquirers": ["acq-alpha"]}
    )
    doc["terminals"].append({"id": "T-0004", "merchant": "M-BISTRO"})
    for issuer in doc["issuers"]:
        if issuer["id"] == "bank-a":
            issuer["hold_ttl_s"] = HOLD_TTL_S
    stack = await asyncio.to_thread(start_stack, run_dir, doc, store=store)
    channels = node_channels(stack)  # the switch's channel carries T-0001's certificate
    try:
        yield stack, channels, run_dir / "settlement"
    finally:
        for ch in channels.values():
            await ch.close()
        await asyncio.to_thread(stack.stop)
        if keyspace is not None:
            await asyncio.to_thread(drop_keyspace, *keyspace)


@pytest.fixture(scope="module")
async def grocer(world):
    stack, channels, _ = world
    return RawTerminal(channels[stack.topology.switch.id], await injected())


@pytest.fixture(scope="module")
async def bistro(world):
    stack, _, _ = world
    terminal = RawTerminal.connect(stack, await injected(), "T-0004", "M-BISTRO")
    yield terminal
    await terminal.channel.close()


@pytest.fixture(scope="module")
def books(world):
    stack, channels, _ = world
    return Books({i.id: channels[i.id] for i in stack.topology.issuers})


def line(cur, scheme, sales=0, sale=0, refunds=0, refund=0, voids=0):
    return terminal_pb2.BatchTotal(
        currency=cur,
        scheme=scheme,
        sale_count=sales,
        sale_minor=sale,
        refund_count=refunds,
        refund_minor=refund,
        void_count=voids,
    )


async def close(pos: RawTerminal, lines, key=None):
    return await pos.stub.CloseBatch(pos.close_request(lines, key), timeout=5.0)


async def sale(pos, pan, minor, cur="EUR"):
    auth = await pos.pay(pan, minor, cur, EXP[pan])
    assert code(auth) == "00", (pan[:6], code(auth))
    return auth


V, J, U, M = (
    common_pb2.CARD_SCHEME_VISA,
    common_pb2.CARD_SCHEME_JCB,
    common_pb2.CARD_SCHEME_UNIONPAY,
    common_pb2.CARD_SCHEME_MASTERCARD,
)


async def test_close_batch_totals_across_eur_jpy_kwd_match_the_terminal(grocer):
    await close(grocer, [])  # start from an empty batch whatever ran before
    a = await sale(grocer, VISA, 1250)
    assert code(await grocer.capture(a.transaction_id)) == "00"
    b = await sale(grocer, VISA, 10000)
    assert code(await grocer.capture(b.transaction_id, 6000)) == "00"  # partial
    c = await sale(grocer, VISA, 777)
    assert code(await grocer.void(c.transaction_id)) == "00"
    assert code(await grocer.refund(a.transaction_id, 500)) == "00"
    j = await sale(grocer, JCB, 1500, "JPY")
    assert code(await grocer.capture(j.transaction_id, None, "JPY")) == "00"
    k = await sale(grocer, UNIONPAY_KWD, 12345, "KWD")
    assert code(await grocer.capture(k.transaction_id, None, "KWD")) == "00"
    uncaptured = await sale(grocer, VISA, 300)  # approved only: not batch material
    assert uncaptured.transaction_id

    ours = [
        line("EUR", V, 2, 7250, 1, 500, 1),
        line("JPY", J, 1, 1500),
        line("KWD", U, 1, 12345),
    ]
    req = grocer.close_request(ours, new_key())
    resp = await grocer.stub.CloseBatch(req, timeout=5.0)
    assert resp.in_balance and not resp.mismatches
    assert resp.reconciliation == terminal_pb2.BATCH_RECONCILIATION_IN_BALANCE
    assert sorted(resp.switch_totals, key=lambda t: t.currency) == ours
    again = await grocer.stub.CloseBatch(req, timeout=5.0)  # a retry closes nothing more
    assert again == resp
    assert grocer.answer_verifies("close_batch", req.ksn, again)
    empty = await close(grocer, [])
    assert empty.batch_number == resp.batch_number + 1 and list(empty.switch_totals) == []


async def test_a_mismatch_is_reported_figure_by_figure(grocer):
    a = await sale(grocer, JCB, 2000, "JPY")
    assert code(await grocer.capture(a.transaction_id, 1999, "JPY")) == "00"
    resp = await close(grocer, [line("JPY", J, 1, 2000), line("EUR", V, 0, 0, 0, 0, 1)])
    assert not resp.in_balance
    assert resp.reconciliation == terminal_pb2.BATCH_RECONCILIATION_OUT_OF_BALANCE
    got = {(m.currency, m.field, m.switch_value, m.terminal_value) for m in resp.mismatches}
    assert got == {("JPY", "sale_minor", 1999, 2000), ("EUR", "void_count", 0, 1)}
    assert list(resp.switch_totals) == [line("JPY", J, 1, 1999)]


async def test_bad_totals_are_invalid_argument_naming_the_field(grocer):
    before = (await close(grocer, [])).batch_number
    for bad, field in [
        ([line("XXX", V, 1, 1)], "terminal_totals[0].currency"),
        ([line("EUR", common_pb2.CARD_SCHEME_UNSPECIFIED, 1, 1)], "terminal_totals[0].scheme"),
        ([line("EUR", V, 1, -5)], "terminal_totals[0].sale_minor"),
        ([line("EUR", V, 1, 1), line("EUR", V, 1, 1)], "terminal_totals[1]"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await close(grocer, bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().startswith(field)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await grocer.stub.CloseBatch(
            grocer.sign_op(
                terminal_pb2.CloseBatchRequest(terminal_id="T-0001", merchant_id="M-FUEL")
            )
        )
    assert err.value.details().startswith("merchant_id")
    # Nothing was closed by the refused requests.
    assert (await close(grocer, [])).batch_number == before + 1


async def test_pos_batch_close_command_against_the_switch(world, grocer, tmp_path):
    stack, _, _ = world
    await close(grocer, [])
    k = await sale(grocer, UNIONPAY_KWD, 2500, "KWD")
    assert code(await grocer.capture(k.transaction_id, None, "KWD")) == "00"
    out, err = io.StringIO(), io.StringIO()
    argv = ["--switch", stack.address(stack.topology.switch.id), "--state-dir", str(tmp_path)]
    argv += ["--certs-dir", str(stack.certs_dir)]
    argv += ["batch", "close", "--line", "KWD:unionpay:1:2.500:0:0:0"]
    assert await pos.run(argv, out=out, err=err) == 0, err.getvalue()
    text = out.getvalue()
    assert "IN BALANCE" in text and "OUT OF" not in text
    assert "2.500" in text and "net 2.500 KWD" in text


async def test_cutoff_clears_posts_and_settles(world, grocer, bistro, books):
    stack, _, directory = world
    # bank-b (default TTL): a restaurant capture 16 % above the authorization (a tip).
    tip = await sale(bistro, MC, 5000)
    mc_before = await books.account("bank-b", "B-2001")
    assert code(await bistro.capture(tip.transaction_id, 5800)) == "00"
    hold = await books.hold("bank-b", tip.rrn)
    assert hold.state == network_pb2.HOLD_STATE_HELD  # the issuer posts it at clearing
    over = await sale(grocer, VISA, 1000)  # a grocer may not capture above the authorization
    assert code(await grocer.capture(over.transaction_id, 1001)) == "13"
    # bank-a (TTL 3 s): one hold left to expire, one captured only after it expired.
    started = time.time()
    expiring = await sale(grocer, VISA, 2500)
    late = await sale(grocer, VISA, 2000)
    online = await sale(grocer, JCB, 3000, "JPY")  # posted online, confirmed at clearing
    assert code(await grocer.capture(online.transaction_id, None, "JPY")) == "00"
    a_before = await books.account("bank-a", "A-1001")

    async def ttl_passed():
        return time.time() > started + HOLD_TTL_S + 0.5

    await until(ttl_passed, timeout=HOLD_TTL_S + 10)
    assert code(await grocer.capture(late.transaction_id)) == "00"
    assert (await books.account("bank-a", "A-1001")).balance == a_before.balance  # deferred

    stack.kill(stack.topology.switch.id, signal.SIGUSR1, wait=False)  # manual cut-off

    async def run_done():  # settled, and the issuers' expiry pass (the run's last step) ran
        tx = await bistro.get(tip.transaction_id)
        expired = await books.hold("bank-a", expiring.rrn)
        return (
            tx.state == terminal_pb2.TRANSACTION_STATE_SETTLED
            and expired.state == network_pb2.HOLD_STATE_RELEASED
        )

    await until(run_done, timeout=60)

    # Clearing files: one per acquirer, header/trailer, no PAN anywhere.
    files = sorted((directory / "clearing").glob("*/*.jsonl"))
    assert {f.parent.name for f in files} == {"acq-alpha", "acq-beta"}
    records = {}
    for f in files:
        assert VISA not in f.read_text() and MC not in f.read_text()
        cf = read_clearing_file(f)
        records.update({r["transaction_id"]: r for r in cf.presentments})
    assert records[tip.transaction_id]["amount_minor"] == 5800
    assert records[tip.transaction_id]["authorized_minor"] == 5000
    assert records[tip.transaction_id]["mcc"] == "5812"
    assert records[late.transaction_id]["kind"] == "CAPTURE"
    assert expiring.transaction_id not in records

    # Issuer books: tip posted in full, late presentment force-posted, expired hold released.
    hold = await books.hold("bank-b", tip.rrn)
    assert (hold.state, hold.posted) == (network_pb2.HOLD_STATE_POSTED, 5800)
    mc_after = await books.account("bank-b", "B-2001")
    assert mc_after.balance - mc_before.balance == -5800
    assert mc_after.held == mc_before.held - 5000  # the hold is gone with the posting
    assert (await books.hold("bank-a", late.rrn)).posted == 2000
    assert (await books.hold("bank-a", expiring.rrn)).state == network_pb2.HOLD_STATE_RELEASED
    a_after = await books.account("bank-a", "A-1001")
    assert a_after.balance - a_before.balance == -2000
    assert a_after.held <= a_before.held - 2500 - 2000

    # Settlement reports: flags, fees from the table, totals per currency.
    reports = [read_report(p) for p in (directory / "settlement").glob("*/*.json")]
    entries = {e["transaction_id"]: e for r in reports for e in r["entries"]}
    assert entries[tip.transaction_id]["reason"] == "ABOVE_HOLD_WITHIN_TOLERANCE"
    assert entries[late.transaction_id]["reason"] == "LATE_PRESENTMENT"
    assert entries[online.transaction_id]["reason"] == "ALREADY_POSTED"
    assert all(entries[t]["status"] == "SETTLED" for t in entries)
    fees = fee_for(stack.topology.fees, "mastercard", "5812", "EUR", 5800)
    assert entries[tip.transaction_id]["interchange_minor"] == fees.interchange_minor > 0
    for r in reports:
        for cur, t in r["totals"].items():
            assert t["net_minor"] == t["gross_minor"] - t["fees_minor"], cur

    # The switch: captures SETTLED (partial: at its captured amount), refunds too.
    for tx_id in (late.transaction_id, online.transaction_id):
        assert (await grocer.get(tx_id)).state == terminal_pb2.TRANSACTION_STATE_SETTLED
    assert (await grocer.get(expiring.transaction_id)).state == (
        terminal_pb2.TRANSACTION_STATE_APPROVED
    )
    assert SettlementConfig().capture_ceiling(5000, "5812") == 6000

    # The switch's ledger got the presentments and settlements through the run's hooks: one
    # balanced set of postings per currency, never two currencies added together.
    store = open_store(stack.store_url)
    await store.open()
    try:
        ledger = Ledger(store)
        currencies = set(await ledger.currencies())
        assert {"EUR", "JPY", "KWD"} <= currencies
        for cur in currencies:
            assert (await ledger.trial_balance(cur)).total == 0, cur
    finally:
        await store.close()


async def test_a_file_the_acquirer_missed_is_settled_by_the_next_run(world, grocer):
    """acq-beta is down at one cut-off: its file stays without a report and its captures stay
    CAPTURED (acq-alpha's settle); back up, the next cut-off settles the missed file."""
    stack, _, directory = world
    jpy = await sale(grocer, JCB, 700, "JPY")  # JCB: only acq-beta takes it
    assert code(await grocer.capture(jpy.transaction_id, None, "JPY")) == "00"
    switch_id = stack.topology.switch.id

    def reports(acquirer: str) -> set[str]:
        return {p.name for p in (directory / "settlement" / acquirer).glob("*.json")}

    alpha_before = reports("acq-alpha")
    stack.kill("acq-beta")
    try:
        stack.kill(switch_id, signal.SIGUSR1, wait=False)

        async def alpha_settled():
            return len(reports("acq-alpha")) > len(alpha_before)

        await until(alpha_settled, timeout=60)
        beta_files = sorted((directory / "clearing" / "acq-beta").glob("*.jsonl"))
        missed = beta_files[-1]
        assert any(
            r["transaction_id"] == jpy.transaction_id
            for r in read_clearing_file(missed).presentments
        )
        assert f"acq-beta-{missed.stem}.json" not in reports("acq-beta")
        assert (await grocer.get(jpy.transaction_id)).state == (
            terminal_pb2.TRANSACTION_STATE_CAPTURED
        )
    finally:
        await asyncio.to_thread(stack.restart, "acq-beta")
    stack.kill(switch_id, signal.SIGUSR1, wait=False)

    async def jpy_settled():
        tx = await grocer.get(jpy.transaction_id)
        return tx.state == terminal_pb2.TRANSACTION_STATE_SETTLED

    await until(jpy_settled, timeout=60)
    assert f"acq-beta-{missed.stem}.json" in reports("acq-beta")


async def test_the_demo_ends_with_a_balanced_close_and_the_settlement_summary(world, tmp_path):
    """``make demo`` against the real processes: every step as expected, then the close in
    balance and gross/fees/net per currency with each exponent."""
    stack, _, _ = world
    out = io.StringIO()
    argv = ["--topology", str(stack.topology_path), "--state-dir", str(tmp_path)]
    # T-0002: the other tests' raw terminal numbers T-0001's STANs from 1 as well.
    argv += ["--switch", stack.address(stack.topology.switch.id), "--terminal", "T-0002"]
    argv += ["--certs-dir", str(stack.certs_dir)]
    code_ = await demo.run(argv, out=out)
    text = out.getvalue()
    assert code_ == 0, text
    assert re.search(r"foreign card \(KWD\).* 00 .*billed 4\.997 KWD at 0\.33310000", text)
    tail = text.split("steps as expected", 1)[1]
    assert "IN BALANCE" in tail and "OUT OF BALANCE" not in tail
    for cur, pattern in (("EUR", r"\d+\.\d\d"), ("JPY", r"\d+"), ("KWD", r"\d+\.\d{3}")):
        assert re.search(
            rf"{cur}\s+gross\s+{pattern}\s+fees\s+{pattern}\s+net\s+{pattern} {cur}", tail
        )
