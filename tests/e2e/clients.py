"""Small clients the end-to-end tests use: a raw terminal (no SDK retries, so each test sees
exactly what the switch answered) and the issuer's books.

The raw terminal sends what a real one does: card data encrypted, PIN blocks and MAC under
the DUKPT keys of its secure element (``terminals.secure_element``), loaded by key injection from
the switch's BDK in the test token (``terminals.keys``). It checks nothing itself, so tests can
send bad card data inside a well-formed envelope.

The switch's terminal port is mTLS when the stack's topology has ``[switch] tls`` (the default
topology does): a channel to it carries one terminal's client certificate, and the switch
refuses requests naming another terminal. Build switch channels with ``switch_channel`` /
``node_channels`` (or ``RawTerminal.connect``), never with a bare insecure channel."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from dataclasses import dataclass, field

import grpc

from payswitch.seclink import canonical_response, card_plaintext, mac_input, operation_mac_input
from payswitch.v1 import common_pb2, network_pb2, network_pb2_grpc, terminal_pb2
from payswitch.v1 import terminal_pb2_grpc as tgrpc
from terminals.pinpad import sim_encipher_pin_block
from terminals.secure_element import SecureElement

_stans = itertools.count(1)


def switch_channel(stack, terminal_id: str = "T-0001", switch_id: str | None = None):
    """An aio channel to a switch (the first by default) as terminal ``terminal_id``."""
    address = stack.address(switch_id or stack.topology.switch.id)
    creds = stack.terminal_credentials(terminal_id)
    if creds is None:
        return grpc.aio.insecure_channel(address)
    return grpc.aio.secure_channel(address, creds)


def node_channel(stack, node_id: str, as_node: str | None = None, **kw) -> grpc.aio.Channel:
    """An aio channel to network node ``node_id``: as the network operator (fault control,
    the issuer's books), or as node ``as_node`` (e.g. the switch calling an acquirer)."""
    address = stack.address(node_id)
    creds = stack.node_credentials(as_node) if as_node else stack.operator_credentials()
    if creds is None:
        return grpc.aio.insecure_channel(address, **kw)
    return grpc.aio.secure_channel(address, creds, **kw)


def node_channels(stack, terminal_id: str = "T-0001") -> dict[str, grpc.aio.Channel]:
    """A channel to every node of the stack; switches are dialled as ``terminal_id``, network
    nodes as the network operator."""
    return {
        n: switch_channel(stack, terminal_id, n)
        if n in stack.switch_ids
        else node_channel(stack, n)
        for n in stack.node_ids
    }


def admin_channel(stack, switch_id: str | None = None) -> grpc.aio.Channel:
    """An aio channel to a switch's AdminService with the operator's credentials."""
    address = stack.admin_address(switch_id)
    creds = stack.admin_credentials()
    if creds is None:
        return grpc.aio.insecure_channel(address)
    return grpc.aio.secure_channel(address, creds)


def next_stan() -> int:
    return next(_stans) % 999_999 + 1


def now_local() -> str:
    return dt.datetime.now().strftime("%Y-%m-%dT%H:%M:%S")


def new_key() -> str:
    return uuid.uuid4().hex


@dataclass
class RawTerminal:
    channel: grpc.aio.Channel
    se: SecureElement  # loaded by key injection (see conftest)
    terminal_id: str = "T-0001"
    merchant_id: str = "M-GROCER"
    stub: tgrpc.TerminalServiceStub = field(init=False)

    def __post_init__(self) -> None:
        self.stub = tgrpc.TerminalServiceStub(self.channel)

    @classmethod
    def connect(
        cls,
        stack,
        se: SecureElement,
        terminal_id: str = "T-0001",
        merchant_id: str = "M-GROCER",
        switch_id: str | None = None,
    ) -> RawTerminal:
        """A raw terminal on a channel of its own, with its own client certificate."""
        return cls(switch_channel(stack, terminal_id, switch_id), se, terminal_id, merchant_id)

    def auth_request(
        self,
        pan: str,
        minor: int,
        currency: str = "EUR",
        expiry: str = "2812",
        key: str | None = "",
        stan: int | None = None,
        *,
        pin: str | None = None,
        cvv2: str = "",
        emv: network_pb2.EmvData | None = None,
    ) -> terminal_pb2.AuthorizeRequest:
        """A signed request under the next DUKPT key (new KSN each call)."""
        txn = self.se.begin()
        req = terminal_pb2.AuthorizeRequest(
            idempotency_key=new_key() if key == "" else (key or ""),
            terminal_id=self.terminal_id,
            merchant_id=self.merchant_id,
            stan=stan or next_stan(),
            local_time=now_local(),
            amount=common_pb2.Money(minor_units=minor, currency=currency),
            entry_mode=common_pb2.ENTRY_MODE_CHIP,
            encrypted_card=terminal_pb2.EncryptedCard(
                ksn=bytes(txn.ksn),
                ciphertext=txn.encrypt_card_data(card_plaintext(pan, expiry, cvv2)),
            ),
        )
        if pin is not None:
            req.pin_block = sim_encipher_pin_block(txn.pin_encrypt_block, pin, pan)
        if emv is not None:
            req.emv.CopyFrom(emv)
        return self.sign(req, txn)

    def sign(self, req: terminal_pb2.AuthorizeRequest, txn=None) -> terminal_pb2.AuthorizeRequest:
        """(Re-)MAC a request under its KSN, after a test changed it on purpose."""
        if txn is None:
            ksn = req.encrypted_card.ksn
            txn = self.se.transaction_at(int.from_bytes(ksn[8:], "big"))
        req.mac = txn.mac(mac_input(req))
        return req

    async def authorize(self, req: terminal_pb2.AuthorizeRequest, timeout: float = 2.0):
        return await self.stub.Authorize(req, timeout=timeout)

    async def pay(self, pan: str, minor: int, currency: str = "EUR", expiry: str = "2812"):
        return await self.authorize(self.auth_request(pan, minor, currency, expiry))

    def sign_op(self, req, txn=None):
        """Put a fresh KSN (or ``txn``'s) and the request MAC on a Capture, Void, Refund or
        CloseBatch request; re-MAC it under its own KSN when it has one already."""
        if txn is None:
            if req.ksn:
                txn = self.se.transaction_at(int.from_bytes(req.ksn[8:], "big"))
            else:
                txn = self.se.begin()
        req.ksn = bytes(txn.ksn)
        req.mac = txn.mac(operation_mac_input(req))
        return req

    def answer_verifies(self, operation: str, ksn: bytes, resp) -> bool:
        """Does ``resp`` carry a response MAC that verifies under ``ksn``'s response key?"""
        txn = self.se.transaction_at(int.from_bytes(ksn[8:], "big"))
        return bool(resp.mac) and txn.response_mac(canonical_response(operation, resp)) == resp.mac

    def capture_request(self, tx_id: str, minor: int | None = None, currency="EUR", key=None):
        req = terminal_pb2.CaptureRequest(
            idempotency_key=key or new_key(), terminal_id=self.terminal_id, transaction_id=tx_id
        )
        if minor is not None:
            req.amount.CopyFrom(common_pb2.Money(minor_units=minor, currency=currency))
        return self.sign_op(req)

    def void_request(self, tx_id: str, key=None):
        return self.sign_op(
            terminal_pb2.VoidRequest(
                idempotency_key=key or new_key(), terminal_id=self.terminal_id, transaction_id=tx_id
            )
        )

    def refund_request(self, tx_id: str, minor: int, currency: str = "EUR", key=None):
        return self.sign_op(
            terminal_pb2.RefundRequest(
                idempotency_key=key or new_key(),
                terminal_id=self.terminal_id,
                original_transaction_id=tx_id,
                amount=common_pb2.Money(minor_units=minor, currency=currency),
                stan=next_stan(),
                local_time=now_local(),
            )
        )

    def close_request(self, lines=(), key=None):
        return self.sign_op(
            terminal_pb2.CloseBatchRequest(
                idempotency_key=key or new_key(),
                terminal_id=self.terminal_id,
                merchant_id=self.merchant_id,
                terminal_totals=list(lines),
            )
        )

    async def capture(self, tx_id: str, minor: int | None = None, currency: str = "EUR", key=None):
        req = self.capture_request(tx_id, minor, currency, key)
        return await self.stub.Capture(req, timeout=2.0)

    async def void(self, tx_id: str, key=None):
        return await self.stub.Void(self.void_request(tx_id, key), timeout=2.0)

    async def refund(self, tx_id: str, minor: int, currency: str = "EUR", key=None):
        return await self.stub.Refund(self.refund_request(tx_id, minor, currency, key), timeout=2.0)

    def lookup_request(self, tx_id: str = "", key: str = ""):
        """A signed GetTransactionRequest by transaction id or by idempotency key."""
        req = terminal_pb2.GetTransactionRequest(terminal_id=self.terminal_id)
        if key:
            req.idempotency_key = key
        else:
            req.transaction_id = tx_id
        return self.sign_op(req)

    async def get(self, tx_id: str) -> terminal_pb2.Transaction:
        req = self.lookup_request(tx_id)
        resp = await self.stub.GetTransaction(req, timeout=2.0)
        assert self.answer_verifies("get_transaction", req.ksn, resp)
        return resp.transaction


class Books:
    """The issuers' books, read over their own gRPC API."""

    def __init__(self, channels: dict[str, grpc.aio.Channel]) -> None:
        self._stubs = {k: network_pb2_grpc.IssuerServiceStub(c) for k, c in channels.items()}

    async def account(self, issuer: str, account: str) -> network_pb2.GetAccountResponse:
        return await self._stubs[issuer].GetAccount(
            network_pb2.GetAccountRequest(account_id=account), timeout=2.0
        )

    async def hold(self, issuer: str, rrn: str) -> network_pb2.GetHoldResponse:
        return await self._stubs[issuer].GetHold(network_pb2.GetHoldRequest(rrn=rrn), timeout=2.0)


def code(resp) -> str:
    """ISO two-digit code of a response."""
    return f"{resp.response_code - 100:02d}"
