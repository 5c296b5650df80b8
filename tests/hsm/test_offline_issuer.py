"""Offline payments through real PKCS#11 keys and real gRPC on 127.0.0.1: the issuer signs an
allowance with its offline key in SoftHSM and holds the cap; a device whose key is in a token
(its secure element) spends it at an offline terminal; the switch settles the upload and posts
each spend to the issuer once; renewal returns the unspent hold."""

from __future__ import annotations

from pathlib import Path

import grpc

from issuer.bookkeeper import Bookkeeper
from issuer.offline_books import OfflineBooks
from issuer.offline_service import OfflineIssuer
from payswitch.offline import sale_ids
from payswitch.offline.formats import Allowance, Signed
from payswitch.offline.wire import Limits
from payswitch.v1 import network_pb2, offline_pb2, offline_pb2_grpc
from payswitch.world.topology import AccountConfig
from switch.api.offline import OfflineApi
from switch.backoffice.offline.settle import OfflineSettlement, Payment
from switch.backoffice.offline.trust import TrustBook
from switch.store import open_store
from terminals.offline import OfflineTerminal
from terminals.offline_device import PayerDevice, TokenSigner
from terminals.offline_sync import sync


async def test_grant_spend_settle_post_renew(hsm_pool, tmp_path: Path) -> None:
    books = OfflineBooks(tmp_path / "issuer-offline.db")
    main = await Bookkeeper.open(tmp_path / "issuer.db", [AccountConfig("acct-1", "EUR", 90_000)])
    issuer = OfflineIssuer("bank-offline", hsm_pool, books, {"acct-1": "EUR"}, ledger_books=main)
    server = grpc.aio.server()
    offline_pb2_grpc.add_IssuerOfflineServiceServicer_to_server(issuer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    istub = offline_pb2_grpc.IssuerOfflineServiceStub(channel)
    try:
        keys = await istub.GetOfflineKeys(offline_pb2.GetOfflineKeysRequest())
        book = TrustBook()
        book.publish_keys("bank-offline", {k.version: bytes(k.public_key) for k in keys.keys})

        signer = await _in_thread(TokenSigner, hsm_pool, "device-offline-1")
        grant = offline_pb2.GrantOfflineAllowanceRequest(
            issuer="bank-offline", account_id="acct-1", card_token="411111-tok-0001",
            device_public_key=await _in_thread(signer.public_key), currency="EUR",
            cumulative_cap=5_000, per_tx_cap=2_000, count_cap=5,
        )  # fmt: skip
        got = await istub.IssueOfflineAllowance(
            offline_pb2.IssueOfflineAllowanceRequest(grant=grant)
        )
        signed = Signed(got.allowance.allowance, got.allowance.allowance_signature)
        allowance = Allowance.parse(signed.body)
        assert books.state(allowance.allowance_id).cap == 5_000

        bad = offline_pb2.GrantOfflineAllowanceRequest()
        bad.CopyFrom(grant)
        bad.per_tx_cap = 9_000
        try:
            await istub.IssueOfflineAllowance(offline_pb2.IssueOfflineAllowanceRequest(grant=bad))
            raise AssertionError("accepted a per-transaction cap above the cumulative cap")
        except grpc.aio.AioRpcError as exc:
            assert exc.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert "per_tx_cap" in (exc.details() or "")

        bad.per_tx_cap = 2_000
        bad.account_id = "acct-nobody"
        try:
            await istub.IssueOfflineAllowance(offline_pb2.IssueOfflineAllowanceRequest(grant=bad))
            raise AssertionError("granted an allowance on an account the issuer does not hold")
        except grpc.aio.AioRpcError as exc:
            assert exc.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert "account_id" in (exc.details() or "")

        device = PayerDevice(tmp_path / "wallet.db", signer)
        device.load(signed)

        posted: list[Payment] = []

        async def pay(p: Payment) -> None:
            posted.append(p)
            await istub.PostOfflineSpend(
                offline_pb2.PostOfflineSpendRequest(
                    spend_key=p.key, allowance_id=p.allowance_id, amount=p.amount,
                    currency=p.currency, merchant_id=p.merchant_id,
                    beyond_allowance=p.beyond_allowance,
                )
            )  # fmt: skip

        async with open_store(f"sqlite:///{tmp_path}/switch.db") as store:
            settlement = OfflineSettlement(store, book, pay)
            sserver = grpc.aio.server()
            offline_pb2_grpc.add_OfflineServiceServicer_to_server(
                OfflineApi(settlement, Limits(2_000, 5, 5_000), tls_on=False), sserver
            )
            sport = sserver.add_insecure_port("127.0.0.1:0")
            await sserver.start()
            async with grpc.aio.insecure_channel(f"127.0.0.1:{sport}") as sch:
                stub = offline_pb2_grpc.OfflineServiceStub(sch)
                t = OfflineTerminal(tmp_path / "t.db", "T1", "M1")
                await sync(stub, t)
                now = allowance.issued_at + 5
                for amount in (1_200, 800):
                    s = await _in_thread(device.spend, amount, "EUR", "M1", "T1", now)
                    t.approve(signed, s, now)
                result = await sync(stub, t)
                assert (result.accepted, result.flagged) == (2, 0)
                assert (await sync(stub, t)).sent == 0
            await sserver.stop(None)
        state = books.state(allowance.allowance_id)
        assert (state.used, state.charged) == (2_000, 0)
        assert device.balance().remaining == 3_000
        # Each spend also held in the main books under its RRN, for clearing to post (once:
        # posting a spend again holds nothing more).
        await pay(posted[0])
        for p in posted:
            hold = await main.hold(sale_ids.rrn_of_spend(p.key))
            assert hold is not None and (hold.state, hold.amount) == (
                network_pb2.HOLD_STATE_HELD, p.amount,
            )  # fmt: skip
        account = await main.account("acct-1")
        assert account is not None and (account.held, account.open_holds) == (2_000, 2)

        renew = offline_pb2.GrantOfflineAllowanceRequest()
        renew.CopyFrom(grant)
        renew.replaces_allowance_id = allowance.allowance_id
        again = await istub.IssueOfflineAllowance(
            offline_pb2.IssueOfflineAllowanceRequest(grant=renew)
        )
        assert again.allowance.returned == 3_000
    finally:
        await channel.close()
        await server.stop(None)
        books.close()
        await main.close()


async def _in_thread(fn, *args):
    import asyncio

    return await asyncio.to_thread(fn, *args)
