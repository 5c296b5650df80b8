"""The authorization pipeline's card-security stages with a scripted CardProtector (no HSM, no
network): the stage order, fail closed when the HSM is unavailable, refusals that leave no
state, and what reaches the network message.

The real protector (``switch.cardsec.hsm``) runs against SoftHSM in the end-to-end tests.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import grpc
import pytest

from hsm.errors import HsmUnavailable
from payswitch import cards
from payswitch.v1 import common_pb2, network_pb2, terminal_pb2
from payswitch.world.topology import load
from switch.cardsec.protector import CardDataRejected, OpenedCard, RequestRejected
from switch.core.budget import Budget
from switch.core.idempotency import IdempotencyGuard
from switch.core.registry import TerminalRegistry
from switch.core.sequences import BlockSequence
from switch.pipeline import Pipeline
from switch.pipeline.context import AuthContext
from switch.routing.router import Router
from switch.services import Services
from switch.store.sqlite.store import SqliteStore
from switch.wire.errors import InvalidArgument, Unauthenticated

TOPOLOGY = Path(__file__).resolve().parents[2] / "topology" / "default.toml"
PAN = "4111111111111111"


class Protector:
    """Scripted: ``fail_at`` names the step that raises ``error``."""

    def __init__(self, fail_at: str = "", error: Exception | None = None) -> None:
        self.fail_at = fail_at
        self.error = error
        self.calls: list[str] = []

    async def check_keys(self, acquirer_ids):
        return None

    async def verify_request(self, fields, mac, keyed):
        self.calls.append("verify")
        if self.fail_at == "verify":
            raise self.error
        return "fp-" + str(fields["amount_minor"]) if keyed else ""

    async def open_card(self, ksn, ciphertext, pin_block, routes):
        self.calls.append("open")
        if self.fail_at == "open":
            raise self.error
        scheme = cards.scheme_of(PAN)
        return OpenedCard(
            pan=PAN,
            expiry="2812",
            cvv2="123",
            token="t" * 64,
            masked_pan=cards.mask_pan(PAN),
            bin=cards.bin_of(PAN),
            scheme=scheme,
            acquirer_ids=tuple(routes.get(scheme, ())),
            pin_block=b"P" * 16 if pin_block else b"",
            vault_blob=b"blob",
            vault_version=1,
        )

    async def tokenize(self, pan):
        return "t" * 64

    async def digest(self, data):
        return "d"


class Connector:
    def __init__(self) -> None:
        self.sent: list[network_pb2.NetworkAuthorization] = []

    async def authorize(self, msg, timeout):
        self.sent.append(msg)
        return network_pb2.NetworkAuthorizationResult(
            rrn=msg.rrn,
            response_code=common_pb2.RESPONSE_CODE_APPROVED,
            auth_code="A1B2C3",
            arpc=b"ARPC8byt",
        )


class Connectors:
    def __init__(self) -> None:
        self.one = Connector()

    def get(self, _acquirer_id):
        return self.one


class Reverser:
    async def queue(self, _tx_id):
        return True

    def schedule_unrecorded(self, _tx):
        pass


@pytest.fixture
async def world(tmp_path):
    topology = load(TOPOLOGY)
    store = SqliteStore(tmp_path / "switch.db", synchronous="normal")
    await store.open()

    def make(protector: Protector) -> tuple[Pipeline, Services]:
        svc = Services(
            config=topology.switch,
            store=store,
            guard=IdempotencyGuard(store),
            protector=protector,
            registry=TerminalRegistry(topology),
            router=Router(topology),
            connectors=Connectors(),
            reverser=Reverser(),
            rrns=BlockSequence(store, "rrn"),
        )
        return Pipeline(svc), svc

    yield make, store
    await store.close()


# Within the switch's local_time window (24 h of its clock): fixed once, so that two requests
# built by one test have the same content.
NOW_LOCAL = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def request(key: str = "k-1", **changes) -> terminal_pb2.AuthorizeRequest:
    req = terminal_pb2.AuthorizeRequest(
        idempotency_key=key,
        terminal_id="T-0001",
        merchant_id="M-GROCER",
        stan=1,
        local_time=NOW_LOCAL,
        amount=common_pb2.Money(minor_units=1250, currency="EUR"),
        entry_mode=common_pb2.ENTRY_MODE_CHIP,
        encrypted_card=terminal_pb2.EncryptedCard(
            ksn=bytes.fromhex("000000011234567800000001"), ciphertext=bytes(32)
        ),
        pin_block=bytes(16),
        mac=bytes(16),
    )
    for name, value in changes.items():
        if name == "amount_minor":
            req.amount.minor_units = value
        else:
            setattr(req, name, value)
    return req


def ctx(req: terminal_pb2.AuthorizeRequest) -> AuthContext:
    """As the terminal service builds it for a terminal presenting its own certificate."""
    return AuthContext(
        request=req,
        budget=Budget.start(2.0, 2.0, 0.06),
        started=time.monotonic(),
        peer=req.terminal_id,
    )


async def _no_state(store: SqliteStore, key: str) -> None:
    assert await store.get_idempotency("T-0001", key, time.time()) is None
    assert await store.get_vault_entry("t" * 64) is None


def test_stage_order():
    topology = load(TOPOLOGY)
    names = Pipeline(
        Services(
            config=topology.switch,
            store=None,
            guard=None,
            protector=Protector(),
            registry=TerminalRegistry(topology),
            router=Router(topology),
            connectors=None,
            reverser=None,
            rrns=None,
        )
    ).names()
    assert names == [
        "admit",
        "validate",
        "verify",
        "claim",
        "route",
        "decrypt",
        "receive",
        "intent",
        "risk",
        "forward",
        "standin",
        "record",
    ]


async def test_approval_forwards_pin_cvv2_and_chip_data_and_returns_the_arpc(world):
    make, store = world
    pipeline, svc = make(Protector())
    req = request()
    req.emv.CopyFrom(
        network_pb2.EmvData(
            arqc=b"12345678",
            atc=b"\x00\x07",
            unpredictable_number=bytes(4),
            pan_sequence_number="00",
            amount_authorised=bytes.fromhex("000000001250"),
            amount_other=bytes(6),
            terminal_country_code=b"\x02\x76",
            tvr=bytes(5),
            transaction_currency_code=b"\x09\x78",
            transaction_date=bytes.fromhex("261121"),
            transaction_type=b"\x00",
            aip=b"\x18\x00",
        )
    )
    resp = await pipeline.run(ctx(req))
    assert resp.response_code == common_pb2.RESPONSE_CODE_APPROVED
    assert resp.arpc == b"ARPC8byt" and resp.masked_pan == "411111******1111"
    (msg,) = svc.connectors.one.sent
    assert (msg.pan, msg.expiry, msg.cvv2) == (PAN, "2812", "123")
    assert msg.pin_block == b"P" * 16 and msg.emv.arqc == b"12345678"
    assert msg.acquirer_id == "acq-alpha"
    tx = await store.get_transaction(resp.transaction_id)
    assert tx.card_token == "t" * 64 and tx.masked_pan == "411111******1111"
    entry = await store.get_vault_entry("t" * 64)
    assert (entry.blob, entry.key_version) == (b"blob", 1)


@pytest.mark.parametrize("step", ["verify", "open"])
async def test_hsm_unavailable_declines_96_and_records_nothing(world, step):
    make, store = world
    protector = Protector(step, HsmUnavailable("HSM session error"))
    pipeline, svc = make(protector)
    resp = await pipeline.run(ctx(request()))
    assert resp.response_code == common_pb2.RESPONSE_CODE_SYSTEM_MALFUNCTION
    assert resp.transaction_id == "" and svc.connectors.one.sent == []
    await _no_state(store, "k-1")  # the key is free again: a retry is processed afresh


async def test_bad_mac_is_unauthenticated_before_any_state(world):
    make, store = world
    protector = Protector("verify", RequestRejected("request MAC does not verify"))
    pipeline, _ = make(protector)
    with pytest.raises(Unauthenticated) as err:
        await pipeline.run(ctx(request()))
    assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert protector.calls == ["verify"]
    await _no_state(store, "k-1")


async def test_unusable_card_data_is_invalid_argument_and_the_key_is_released(world):
    make, store = world
    protector = Protector("open", CardDataRejected("encrypted_card", "does not decrypt"))
    pipeline, _ = make(protector)
    with pytest.raises(InvalidArgument) as err:
        await pipeline.run(ctx(request()))
    assert err.value.field == "encrypted_card"
    assert protector.calls == ["verify", "open"]
    await _no_state(store, "k-1")


async def test_a_replay_never_opens_the_card_again(world):
    make, _ = world
    protector = Protector()
    pipeline, _ = make(protector)
    first = await pipeline.run(ctx(request()))
    again = await pipeline.run(ctx(request()))
    assert again == first
    assert protector.calls == ["verify", "open", "verify"]


async def test_same_key_other_content_is_refused(world):
    from switch.wire.errors import FailedPrecondition

    make, _ = world
    pipeline, _ = make(Protector())
    await pipeline.run(ctx(request()))
    with pytest.raises(FailedPrecondition):
        await pipeline.run(ctx(request(amount_minor=1251)))
