"""A fake TerminalService on a real grpc.aio loopback server, for testing the SDK's own
behaviour (retries, error mapping, STANs, the CLI and the demo runner), not the switch.

The fake keeps just enough state to be answered consistently: transactions, idempotency keys
(same content -> replayed answer, other content -> FAILED_PRECONDITION) and a per-PAN decline
table. Tests can push scripted actions per method; each action runs before the default
behaviour and may answer, fail or hang.

Card security is faked with known keys (``termkit``): the fake opens each request as the switch
would (bad MAC: UNAUTHENTICATED; clear card: INVALID_ARGUMENT) and then plays the issuer: a PIN
other than ``pins[pan]`` is 55, a CVV2 other than ``cvv2s[pan]`` (default "123") is 05, chip
data gets the fake ARPC that ``termkit.FakeCards`` accepts.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from termkit import Host, fake_arpc, inject_test_key

from payswitch import cards, codes
from payswitch.v1 import common_pb2, terminal_pb2, terminal_pb2_grpc
from terminals import keys

Action = Callable[[Message, grpc.aio.ServicerContext], Awaitable[Message | None]]

_SCHEMES = {
    "visa": common_pb2.CARD_SCHEME_VISA,
    "mastercard": common_pb2.CARD_SCHEME_MASTERCARD,
    "amex": common_pb2.CARD_SCHEME_AMEX,
    "discover": common_pb2.CARD_SCHEME_DISCOVER,
    "jcb": common_pb2.CARD_SCHEME_JCB,
    "unionpay": common_pb2.CARD_SCHEME_UNIONPAY,
}


def fail(code: grpc.StatusCode, message: str = "scripted failure") -> Action:
    async def action(_req: Message, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    return action


def bad_request(field: str, description: str) -> Action:
    """INVALID_ARGUMENT with a google.rpc.BadRequest, as the switch sends it."""

    async def action(_req: Message, context: grpc.aio.ServicerContext) -> None:
        detail = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
            ]
        )
        status = status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message=f"{field}: {description}"
        )
        status.details.add().Pack(detail)
        await context.abort_with_status(rpc_status.to_status(status))

    return action


def hang(started: asyncio.Event | None = None) -> Action:
    """Never answer: the client's deadline ends the call (and cancels this handler)."""

    async def action(_req: Message, _context: grpc.aio.ServicerContext) -> None:
        if started is not None:
            started.set()
        await asyncio.Event().wait()

    return action


@pytest.fixture(autouse=True)
def no_run_certificates(monkeypatch, tmp_path):
    """pos uses the certificates a test names, never the developer's .run/certs."""
    from terminals import pos

    monkeypatch.setattr(pos, "RUN_CERTS", tmp_path / "no-run" / "certs")
    monkeypatch.delenv("PAYSWITCH_CERTS_DIR", raising=False)


@pytest.fixture(autouse=True)
def test_key_injection(monkeypatch):
    """SDK terminals load the test key instead of asking the KIF (``terminals.keys``)."""
    monkeypatch.setattr(keys, "injector_for", lambda _terminal_id: inject_test_key)


class FakeSwitch(terminal_pb2_grpc.TerminalServiceServicer):
    # Scripted actions, reachable from tests through the fixture: switch.fake.fail(...).
    fail = staticmethod(fail)
    bad_request = staticmethod(bad_request)
    hang = staticmethod(hang)

    def __init__(self) -> None:
        self.requests: dict[str, list[Message]] = defaultdict(list)
        self.script: dict[str, list[Action]] = defaultdict(list)
        self.declines: dict[str, str] = {}  # PAN -> ISO code
        self.pins: dict[str, str] = {}  # PAN -> the cardholder's PIN (others answer 55)
        self.cvv2s: dict[str, str] = {}  # PAN -> the card's CVV2 (others answer 05)
        self.opened: list[terminal_pb2.CardData] = []  # card data of every MAC-valid request
        self.host = Host()
        self.txs: dict[str, terminal_pb2.Transaction] = {}
        self.keys: dict[tuple[str, str], tuple[bytes, Message]] = {}
        self._rrn = itertools.count(1)
        self.batched: set[str] = set()  # transactions in a closed batch
        # RPC -> a change made to its answer after the MAC (the SDK must refuse it)
        self.tamper: dict[str, Callable[[Message], None]] = {}
        self.rekey = False  # answers say rekey_required (as the switch near counter exhaustion)
        self.batch_no = 0

    def push(self, method: str, *actions: Action) -> None:
        self.script[method].extend(actions)

    # -- plumbing --------------------------------------------------------------------------

    async def _scripted(self, method: str, req: Message, context) -> Message | None:
        self.requests[method].append(req)
        if self.script[method]:
            return await self.script[method].pop(0)(req, context)
        return None

    async def _idempotent(self, method: str, req, context, compute) -> Message:
        if not req.idempotency_key:
            return await compute()
        content = type(req)()
        content.CopyFrom(req)
        content.idempotency_key = ""
        fingerprint = method.encode() + content.SerializeToString(deterministic=True)
        scope = (req.terminal_id, req.idempotency_key)
        if scope in self.keys:
            seen, answer = self.keys[scope]
            if seen != fingerprint:
                await context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "idempotency_key: already used for a different request on this terminal",
                )
            return answer
        answer = await compute()
        self.keys[scope] = (fingerprint, answer)
        return answer

    def _tx(self, tx_id: str, terminal_id: str) -> terminal_pb2.Transaction | None:
        tx = self.txs.get(tx_id)
        return tx if tx is not None and tx.terminal_id == terminal_id else None

    # -- the service -----------------------------------------------------------------------

    async def Authorize(self, req, context):
        scripted = await self._scripted("Authorize", req, context)
        if scripted is not None:
            return scripted

        if req.HasField("card"):
            await bad_request("card", "clear card data is not accepted; send encrypted_card")(
                req, context
            )
        opened = self.host.open(req)
        if opened is None:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "mac: the request MAC does not verify"
            )
        card, pin = opened
        self.opened.append(card)

        async def compute():
            iso = self.declines.get(card.pan, "00")
            if pin is not None and pin != self.pins.get(card.pan):
                iso = "55"
            elif card.cvv2 and card.cvv2 != self.cvv2s.get(card.pan, "123"):
                iso = "05"
            code = codes.to_enum(iso)
            scheme = cards.scheme_of(card.pan)
            tx = terminal_pb2.Transaction(
                transaction_id=uuid.uuid4().hex,
                type=terminal_pb2.TRANSACTION_TYPE_AUTHORIZATION,
                state=terminal_pb2.TRANSACTION_STATE_APPROVED
                if iso == "00"
                else terminal_pb2.TRANSACTION_STATE_DECLINED,
                terminal_id=req.terminal_id,
                merchant_id=req.merchant_id,
                stan=req.stan,
                local_time=req.local_time,
                amount=req.amount,
                response_code=code,
                auth_code=f"A{next(self._rrn):05d}" if iso == "00" else "",
                rrn=f"{next(self._rrn):012d}",
                scheme=_SCHEMES[scheme.value] if scheme else 0,
                masked_pan=cards.mask_pan(card.pan),
                acquirer_id="acq-fake",
            )
            self.txs[tx.transaction_id] = tx
            return terminal_pb2.AuthorizeResponse(
                transaction_id=tx.transaction_id,
                response_code=code,
                auth_code=tx.auth_code,
                rrn=tx.rrn,
                stan=req.stan,
                amount=req.amount,
                scheme=tx.scheme,
                masked_pan=tx.masked_pan,
                acquirer_id=tx.acquirer_id,
                message="approved" if iso == "00" else "declined",
                arpc=fake_arpc(req.emv, iso) if req.HasField("emv") else b"",
            )

        return await self._idempotent("Authorize", req, context, compute)

    async def Capture(self, req, context):
        scripted = await self._scripted("Capture", req, context)
        if scripted is not None:
            return scripted

        async def compute():
            tx = self._tx(req.transaction_id, req.terminal_id)
            if tx is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "transaction_id: unknown")
            if tx.state != terminal_pb2.TRANSACTION_STATE_APPROVED:
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not capturable")
            amount = req.amount if req.HasField("amount") else tx.amount
            if amount.minor_units > tx.amount.minor_units:
                await bad_request("amount.minor_units", "exceeds the authorized amount")(
                    req, context
                )
            tx.captured.CopyFrom(amount)
            tx.state = terminal_pb2.TRANSACTION_STATE_CAPTURED
            return terminal_pb2.CaptureResponse(
                response_code=common_pb2.RESPONSE_CODE_APPROVED, transaction=tx
            )

        return await self._idempotent("Capture", req, context, compute)

    async def Void(self, req, context):
        scripted = await self._scripted("Void", req, context)
        if scripted is not None:
            return scripted

        async def compute():
            tx = self._tx(req.transaction_id, req.terminal_id)
            if tx is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "transaction_id: unknown")
            if tx.state != terminal_pb2.TRANSACTION_STATE_APPROVED:
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not voidable")
            tx.state = terminal_pb2.TRANSACTION_STATE_VOIDED
            return terminal_pb2.VoidResponse(
                response_code=common_pb2.RESPONSE_CODE_APPROVED, transaction=tx
            )

        return await self._idempotent("Void", req, context, compute)

    async def Refund(self, req, context):
        scripted = await self._scripted("Refund", req, context)
        if scripted is not None:
            return scripted

        async def compute():
            orig = self._tx(req.original_transaction_id, req.terminal_id)
            if orig is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "original_transaction_id")
            if orig.state != terminal_pb2.TRANSACTION_STATE_CAPTURED:
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not captured")
            left = orig.captured.minor_units - orig.refunded.minor_units
            if req.amount.minor_units > left:
                await bad_request("amount.minor_units", "exceeds what is refundable")(req, context)
            orig.refunded.CopyFrom(
                common_pb2.Money(
                    minor_units=orig.refunded.minor_units + req.amount.minor_units,
                    currency=req.amount.currency,
                )
            )
            tx = terminal_pb2.Transaction(
                transaction_id=uuid.uuid4().hex,
                type=terminal_pb2.TRANSACTION_TYPE_REFUND,
                state=terminal_pb2.TRANSACTION_STATE_APPROVED,
                terminal_id=req.terminal_id,
                merchant_id=orig.merchant_id,
                stan=req.stan,
                local_time=req.local_time,
                amount=req.amount,
                response_code=common_pb2.RESPONSE_CODE_APPROVED,
                rrn=f"{next(self._rrn):012d}",
                scheme=orig.scheme,
                masked_pan=orig.masked_pan,
                original_transaction_id=orig.transaction_id,
            )
            self.txs[tx.transaction_id] = tx
            return terminal_pb2.RefundResponse(
                response_code=common_pb2.RESPONSE_CODE_APPROVED, transaction=tx
            )

        return await self._idempotent("Refund", req, context, compute)

    async def GetTransaction(self, req, context):
        scripted = await self._scripted("GetTransaction", req, context)
        if scripted is not None:
            return scripted
        tx_id = req.transaction_id
        if req.WhichOneof("lookup") == "idempotency_key":
            found = self.keys.get((req.terminal_id, req.idempotency_key))
            answer = found[1] if found else None
            tx_id = getattr(answer, "transaction_id", "") or (
                answer.transaction.transaction_id if answer is not None else ""
            )
        tx = self._tx(tx_id, req.terminal_id)
        if tx is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such transaction")
        return terminal_pb2.GetTransactionResponse(transaction=tx)

    async def CloseBatch(self, req, context):
        """Totals of the terminal's captures, refunds and voids since its last close."""
        scripted = await self._scripted("CloseBatch", req, context)
        if scripted is not None:
            return scripted

        async def compute():
            lines: dict[tuple[str, int], terminal_pb2.BatchTotal] = {}
            for tx in self.txs.values():
                if tx.terminal_id != req.terminal_id or tx.transaction_id in self.batched:
                    continue
                key = (tx.amount.currency, tx.scheme)
                line = lines.setdefault(
                    key, terminal_pb2.BatchTotal(currency=key[0], scheme=key[1])
                )
                if tx.state == terminal_pb2.TRANSACTION_STATE_CAPTURED:
                    line.sale_count += 1
                    line.sale_minor += tx.captured.minor_units
                elif tx.type == terminal_pb2.TRANSACTION_TYPE_REFUND:
                    line.refund_count += 1
                    line.refund_minor += tx.amount.minor_units
                elif tx.state == terminal_pb2.TRANSACTION_STATE_VOIDED:
                    line.void_count += 1
                else:
                    continue
                self.batched.add(tx.transaction_id)
            ours = [lines[k] for k in sorted(lines) if lines[k].ByteSize() > 0]
            ours = [t for t in ours if t.sale_count or t.refund_count or t.void_count]
            theirs = sorted(req.terminal_totals, key=lambda t: (t.currency, t.scheme))
            self.batch_no += 1
            return terminal_pb2.CloseBatchResponse(
                batch_number=self.batch_no,
                switch_totals=ours,
                in_balance=ours == theirs,
                response_code=common_pb2.RESPONSE_CODE_APPROVED,
            )

        return await self._idempotent("CloseBatch", req, context, compute)

    async def Echo(self, req, context):
        scripted = await self._scripted("Echo", req, context)
        if scripted is not None:
            return scripted
        return terminal_pb2.EchoResponse(
            message=req.message, switch_id="fake-switch", server_time_ms=1_700_000_000_000
        )


# The answers the fake MACs as the switch does (``payswitch.seclink.canonical_response`` under
# the request KSN's response key, ``termkit.Host.seal``), by RPC and operation name.
_SEALED = {
    "Authorize": "authorize",
    "Capture": "capture",
    "Void": "void",
    "Refund": "refund",
    "CloseBatch": "close_batch",
    "GetTransaction": "get_transaction",
}


def _sealing(rpc: str, operation: str):
    inner = getattr(FakeSwitch, rpc)

    async def method(self: FakeSwitch, req, context):
        resp = await inner(self, req, context)
        ksn = req.encrypted_card.ksn if rpc == "Authorize" else req.ksn
        if resp is not None and not resp.mac and ksn:
            resp.rekey_required = self.rekey
            self.host.seal(operation, ksn, resp)
        if resp is not None and self.tamper.get(rpc):
            out = type(resp)()
            out.CopyFrom(resp)
            self.tamper[rpc](out)
            return out
        return resp

    return method


for _rpc, _operation in _SEALED.items():
    setattr(FakeSwitch, _rpc, _sealing(_rpc, _operation))


class FakeServer:
    def __init__(self, fake: FakeSwitch, server: grpc.aio.Server, port: int) -> None:
        self.fake = fake
        self.server = server
        self.address = f"127.0.0.1:{port}"


@pytest.fixture
async def switch() -> AsyncIterator[FakeServer]:
    fake = FakeSwitch()
    server = grpc.aio.server()
    terminal_pb2_grpc.add_TerminalServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield FakeServer(fake, server, port)
    finally:
        await server.stop(None)
