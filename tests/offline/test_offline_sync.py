"""SyncOffline over real gRPC on 127.0.0.1 with a real store: terminals approve offline, upload
(one cut halfway and resumed, one repeated), a cloned device and a tampered entry are flagged
with evidence, honest spends are paid once, and the answer brings the trust."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from payswitch.offline import ecdsa
from payswitch.offline.checks import device_id
from payswitch.offline.wire import Limits
from payswitch.v1 import offline_pb2, offline_pb2_grpc
from switch.api.offline import OfflineApi
from switch.backoffice.offline.settle import OfflineSettlement, Payment
from switch.backoffice.offline.trust import TrustBook
from switch.store import open_store
from terminals.offline import OfflineTerminal
from terminals.offline_device import PayerDevice
from terminals.offline_sync import sync
from tests.offline import kit


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[dict]:
    issuer = ecdsa.SoftwareKey()
    book = TrustBook()
    book.publish_keys("bank-a", {1: issuer.public_key()})
    paid: list[Payment] = []

    async def pay(p: Payment) -> None:
        if p.key not in {q.key for q in paid}:
            paid.append(p)

    async with open_store(f"sqlite:///{tmp_path}/switch.db") as store:
        settlement = OfflineSettlement(store, book, pay, clock=lambda: float(kit.NOW))
        server = grpc.aio.server()
        offline_pb2_grpc.add_OfflineServiceServicer_to_server(
            OfflineApi(
                settlement,
                Limits(5_000, 10, 50_000),
                tls_on=False,
                merchants={t: "M1" for t in ("T1", "T2", "T5", "T7", "T9")},
            ),
            server,
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield {
                "stub": offline_pb2_grpc.OfflineServiceStub(channel),
                "issuer": issuer,
                "book": book,
                "paid": paid,
                "store": store,
                "tmp": tmp_path,
                "target": f"127.0.0.1:{port}",
            }
        await server.stop(None)


async def test_sync_cut_resumed_repeated_and_flagged(world: dict) -> None:
    stub, tmp, issuer = world["stub"], world["tmp"], world["issuer"]
    t1 = OfflineTerminal(tmp / "t1.db", "T1", "M1")
    t2 = OfflineTerminal(tmp / "t2.db", "T2", "M1")
    for t in (t1, t2):
        await sync(stub, t)  # the trust comes with the first sync
        assert t.trust().keys == {("bank-a", 1): issuer.public_key()}
        assert t.limits().floor_limit == 5_000
    honest = [kit.device(tmp, issuer, name=f"card{i}") for i in range(3)]
    for i in range(6):
        d = honest[i % 3]
        t = (t1, t2)[i % 2]
        t.approve(d.allowance(), d.spend(100 + i, "EUR", "M1", t.terminal_id, kit.NOW), kit.NOW)
    # A cloned device: the wallet file and key copied, the same counter spent at both.
    victim = kit.device(tmp, issuer, name="victim")
    victim._conn.execute("PRAGMA wal_checkpoint(FULL)")
    (tmp / "clone.db").write_bytes((tmp / "victim.db").read_bytes())
    clone = PayerDevice(tmp / "clone.db", victim.signer)
    t1.approve(victim.allowance(), victim.spend(900, "EUR", "M1", "T1", kit.NOW), kit.NOW)
    t2.approve(clone.allowance(), clone.spend(800, "EUR", "M1", "T2", kit.NOW), kit.NOW)
    # A journal entry altered after approval.
    t2._conn.execute(
        "UPDATE journal SET spend = replace(spend, '|105|', '|4105|') WHERE counter = 2 "
        "AND allowance_id = 'al-card2'"
    )

    first = await sync(stub, t1, stop_after=2)  # cut after two entries
    assert (first.sent, first.settled_through) == (2, 2)
    rest = await sync(stub, t1)  # resumes after the cut
    assert rest.sent == 2 and rest.settled_through == 4
    again = await sync(stub, t1)
    assert again.sent == 0
    r2 = await sync(stub, t2)
    assert r2.flagged == 2 and r2.accepted == 2

    cases = await world["store"].offline_cases()
    problems = sorted(p for c in cases for p in c.problems)
    assert problems == ["bad_device_signature", "duplicate_counter"]
    dup = next(c for c in cases if "duplicate_counter" in c.problems)
    assert dup.liability == "cardholder" and dup.allowance_id == "al-victim"
    assert '"first_claim"' in dup.evidence
    bad = next(c for c in cases if "bad_device_signature" in c.problems)
    assert bad.liability == "merchant" and not bad.paid and "|4105|" in bad.evidence
    paid = world["paid"]
    assert len(paid) == 7  # 5 honest (one was altered) + the victim's two claims
    assert len({p.key for p in paid}) == 7
    assert sum(p.beyond_allowance for p in paid) == 1


async def test_sync_answer_carries_revocations_and_bad_input_is_named(world: dict) -> None:
    stub, tmp = world["stub"], world["tmp"]
    d = kit.device(tmp, world["issuer"], name="lost")
    world["book"].revoke_device(device_id(d.signer.public_key()))
    t = OfflineTerminal(tmp / "t9.db", "T9", "M1")
    await sync(stub, t)
    assert device_id(d.signer.public_key()) in t.trust().revoked_devices

    async def bad() -> AsyncIterator[offline_pb2.SyncOfflineRequest]:
        yield offline_pb2.SyncOfflineRequest(
            terminal_id="T9", merchant_id="M1", seq=0, journal_id="j1"
        )

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SyncOffline(bad())
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "seq" in (info.value.details() or "")


async def test_pos_sync_command(world: dict) -> None:
    import io

    from terminals import pos

    tmp, issuer = world["tmp"], world["issuer"]
    (tmp / "state").mkdir()
    journal = OfflineTerminal(tmp / "state" / "terminal-T5.offline.db", "T5", "M1")
    await sync(world["stub"], journal)
    d = kit.device(tmp, issuer, name="pos-card")
    journal.approve(d.allowance(), d.spend(250, "EUR", "M1", "T5", kit.NOW), kit.NOW)
    journal.close()
    out, err = io.StringIO(), io.StringIO()
    argv = ["--switch", world["target"], "--plaintext", "--terminal", "T5", "--merchant", "M1"]
    code = await pos.run([*argv, "--state-dir", str(tmp / "state"), "sync"], out=out, err=err)
    assert code == 0, err.getvalue()
    assert "1 sent, settled through 1 (1 accepted, 0 flagged, 0 repeated)" in out.getvalue()
    assert len(world["paid"]) == 1


async def test_a_replaced_journal_is_counted_afresh(world: dict) -> None:
    """A terminal whose journal was replaced (new file, seq from 1 again) is not taken as
    resending: the switch counts per (terminal, journal)."""
    stub, tmp, issuer = world["stub"], world["tmp"], world["issuer"]
    d = kit.device(tmp, issuer, name="replaced")
    old = OfflineTerminal(tmp / "old.db", "T7", "M1")
    await sync(stub, old)
    old.approve(d.allowance(), d.spend(100, "EUR", "M1", "T7", kit.NOW), kit.NOW)
    assert (await sync(stub, old)).accepted == 1
    new = OfflineTerminal(tmp / "new.db", "T7", "M1")
    await sync(stub, new)
    new.approve(d.allowance(), d.spend(200, "EUR", "M1", "T7", kit.NOW), kit.NOW)
    done = await sync(stub, new)
    assert (done.sent, done.accepted, done.settled_through) == (1, 1, 1)


async def test_an_upload_naming_another_merchant_is_refused(world: dict) -> None:
    async def lying() -> AsyncIterator[offline_pb2.SyncOfflineRequest]:
        yield offline_pb2.SyncOfflineRequest(
            terminal_id="T1", merchant_id="M-OTHER", seq=1, journal_id="j1"
        )

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await world["stub"].SyncOffline(lying())
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
