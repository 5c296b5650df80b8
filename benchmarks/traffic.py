"""What the simulated fleet sends: test cards, terminals with their secure elements, and
requests built before they are needed.

Each terminal has its own simulated secure element (``terminals.secure_element``) loaded by key
injection from the switch's BDK, as a real PIN pad is; every authorization is encrypted under
a fresh DUKPT key and MAC'd (``payswitch.seclink``), so the switch does its real HSM work.

Why prebuilt: building one such request costs the generator ~80 us of Python (DUKPT derivation,
AES, CMAC), and the generator shares two cores with the system under test. Feeds therefore
``prepare(n)`` requests before a phase starts; one built during a phase (the pool ran dry) is
counted in ``built_live`` and shown in the report.

STANs are unique per (terminal, local date), idempotency keys unique per terminal, and each
request uses its terminal's next KSN; requests are sent in the order they were built.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from payswitch import seclink
from payswitch.v1 import common_pb2, terminal_pb2
from terminals.pinpad import sim_encipher_pin_block
from terminals.secure_element import SecureElement, new_ikid

AUTHORIZE = "Authorize"


@dataclass(frozen=True, slots=True)
class CardProfile:
    """A test card from ``topology/default.toml`` and the answer it should get."""

    name: str
    pan: str
    expiry: str
    currency: str
    minor: int
    expect: str  # ISO 8583 response code


# Approvals across every scheme the default world knows (balances are raised for the bench).
APPROVALS: tuple[CardProfile, ...] = (
    CardProfile("visa", "4111111111111111", "2812", "EUR", 1250, "00"),
    CardProfile("mastercard", "5555555555554444", "2906", "EUR", 2390, "00"),
    CardProfile("mastercard-usd", "2223000048400011", "2906", "USD", 1799, "00"),
    CardProfile("amex", "378282246310005", "2903", "EUR", 8450, "00"),
    CardProfile("discover", "6011111111111117", "2903", "EUR", 560, "00"),
    CardProfile("jcb", "3530111333300000", "2903", "JPY", 1500, "00"),
    CardProfile("unionpay", "6200000000000005", "2903", "EUR", 3100, "00"),
)

# Every decline the default world gives, each from the party that gives it.
DECLINES: tuple[CardProfile, ...] = (
    CardProfile("insufficient-funds", "4000000000000002", "2812", "EUR", 2000, "51"),
    CardProfile("expired", "4000000000000069", "2401", "EUR", 100, "54"),
    CardProfile("blocked", "4000000000000119", "2812", "EUR", 100, "05"),
    CardProfile("lost", "5105105105105100", "2906", "EUR", 100, "05"),
    CardProfile("over-limit", "4242424242424242", "2812", "EUR", 10001, "61"),
    CardProfile("unknown-card", "4012888888881881", "2812", "EUR", 100, "14"),
    CardProfile("wrong-currency", "2223000048400011", "2906", "EUR", 100, "12"),
)

# Operations of the mix and their weights (per cent). "pin" is used only when the topology
# gives cards a PIN; "emv" (a chip sale: EmvData with a real ARQC, made before the phase by the
# card simulator with the issuers' keys, ``terminals.card_sim``) only when ARQCs were made.
MIX_WEIGHTS: dict[str, int] = {
    "approve": 60,
    "pin": 5,
    "decline": 10,
    "capture": 8,
    "void": 3,
    "refund": 4,
    "retry": 5,
    "emv": 5,
}
HOOKS_ONLY: tuple[str, ...] = ()


@dataclass(slots=True)
class Call:
    """One request ready to send: the RPC, its bytes, and what the mix needs afterwards."""

    kind: str
    method: str
    payload: bytes
    key: str
    terminal: str
    extra: Any = None


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def stan_and_key(stan: int, key: str) -> bytes:
    """Fields 4 (stan, varint) and 1 (idempotency_key, string) of ``AuthorizeRequest``."""
    raw = key.encode()
    return b"\x20" + _varint(stan) + b"\x0a" + _varint(len(raw)) + raw


def local_time_now() -> str:
    return dt.datetime.now().strftime("%Y-%m-%dT%H:%M:%S")


def terminal_ids(count: int, prefix: str = "T-B") -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(count)]


Injector = Callable[[bytes, bytes, bytes], bytes]  # (ikid, modulus, exponent) -> wrapped IK


def inject(terminals: Sequence[str], wrap: Injector, threads: int = 2) -> dict[str, SecureElement]:
    """A loaded secure element per terminal. ``wrap`` is the key-injection side (the HSM's
    ``hsm.dukpt.wrap_initial_key_for_terminal``); the RSA transport keys are generated in
    ``threads`` threads (the slow part: ~40 ms each)."""
    ses = {t: SecureElement() for t in terminals}
    with ThreadPoolExecutor(max(threads, 1)) as pool:
        publics = list(pool.map(lambda se: se.transport_public_key(), ses.values()))
    for se, (modulus, exponent) in zip(ses.values(), publics, strict=True):
        ikid = new_ikid()
        se.load_initial_key(ikid, wrap(ikid, modulus, exponent))
    return ses


class Fleet:
    """Terminals with their merchants, secure elements and STAN counters."""

    def __init__(
        self, terminals: Sequence[tuple[str, str]], elements: dict[str, SecureElement]
    ) -> None:
        if not terminals:
            raise ValueError("a fleet needs at least one terminal")
        self.terminals = list(terminals)
        self.merchant_of = dict(terminals)
        self._se = elements
        self._stans = {t: itertools.count(1) for t, _ in terminals}
        self._keys = itertools.count(1)
        self._run = secrets.token_hex(3)

    def next_stan(self, terminal: str) -> int:
        stan = next(self._stans[terminal])
        if stan > 999_999:
            raise RuntimeError(f"{terminal}: STANs exhausted for this run")
        return stan

    def next_key(self) -> str:
        return f"b{self._run}x{next(self._keys):x}"

    def request(
        self,
        terminal: str,
        card: CardProfile,
        key: str,
        stan: int,
        pin: str | None = None,
        emv: Any = None,
    ) -> terminal_pb2.AuthorizeRequest:
        """An authorization as the terminal's secure element makes it: card data under the
        next DUKPT data key, PIN block under its PIN key when ``pin``, MAC over the rest."""
        tx = self._se[terminal].begin()
        req = terminal_pb2.AuthorizeRequest(
            idempotency_key=key,
            terminal_id=terminal,
            merchant_id=self.merchant_of[terminal],
            stan=stan,
            local_time=local_time_now(),
            amount=common_pb2.Money(minor_units=card.minor, currency=card.currency),
            entry_mode=common_pb2.ENTRY_MODE_CHIP,
            encrypted_card=terminal_pb2.EncryptedCard(
                ksn=bytes(tx.ksn),
                ciphertext=tx.encrypt_card_data(seclink.card_plaintext(card.pan, card.expiry)),
            ),
        )
        if pin is not None:
            req.pin_block = sim_encipher_pin_block(tx.pin_encrypt_block, pin, card.pan)
        if emv is not None:
            req.emv.CopyFrom(emv)
        req.mac = tx.mac(seclink.mac_input(req))
        return req

    def authorize(
        self,
        terminal: str,
        card: CardProfile,
        kind: str,
        pin: str | None = None,
        emv: Any = None,
    ) -> Call:
        key = self.next_key()
        req = self.request(terminal, card, key, self.next_stan(terminal), pin, emv)
        return Call(kind, AUTHORIZE, req.SerializeToString(), key, terminal, card)

    def sign(self, terminal: str, req: Any) -> Any:
        """A capture, void or refund under the terminal's next DUKPT key, MAC'd."""
        tx = self._se[terminal].begin()
        req.ksn = bytes(tx.ksn)
        req.mac = tx.mac(seclink.operation_mac_input(req))
        return req

    def refund_request(self, terminal: str, tx_id: str, minor: int, currency: str) -> Call:
        key = self.next_key()
        req = terminal_pb2.RefundRequest(
            idempotency_key=key,
            terminal_id=terminal,
            original_transaction_id=tx_id,
            amount=common_pb2.Money(minor_units=minor, currency=currency),
            stan=self.next_stan(terminal),
            local_time=local_time_now(),
        )
        self.sign(terminal, req)
        return Call("refund", "Refund", req.SerializeToString(), key, terminal)


class CardFeed:
    """Authorizations for a rotation of cards, round robin over terminals, prebuilt."""

    def __init__(
        self,
        fleet: Fleet,
        cards: Sequence[CardProfile] = APPROVALS,
        kind: str = "approve",
        pins: dict[str, str] | None = None,
    ) -> None:
        self.fleet = fleet
        self.kind = kind
        self._terminals = itertools.cycle([t for t, _ in fleet.terminals])
        self._cards = itertools.cycle(cards)
        self._pins = pins
        self._ready: deque[Call] = deque()
        self.built_live = 0

    def _build(self) -> Call:
        card = next(self._cards)
        pin = self._pins[card.pan] if self._pins is not None else None
        return self.fleet.authorize(next(self._terminals), card, self.kind, pin)

    def prepare(self, n: int) -> None:
        """Build requests up to ``n`` waiting (outside any measured window)."""
        for _ in range(max(n - len(self._ready), 0)):
            self._ready.append(self._build())

    def next(self) -> Call:
        if self._ready:
            return self._ready.popleft()
        self.built_live += 1
        return self._build()

    def on_result(self, call: Call, response: Any) -> None:
        """Stateless: nothing to remember."""


class ChipFeed(CardFeed):
    """Chip sales: each with one of the ARQCs made before the phase (a cryptogram is used once:
    when they run out, ``next`` gives None and the mix counts a fallback)."""

    def __init__(self, fleet: Fleet, arqcs: Sequence[tuple[CardProfile, Any]]) -> None:
        super().__init__(fleet, [c for c, _ in arqcs] or APPROVALS, "emv")
        self._arqcs = deque(arqcs)

    def _build(self) -> Call:
        card, emv = self._arqcs.popleft()
        return self.fleet.authorize(next(self._terminals), card, "emv", None, emv)

    def prepare(self, n: int) -> None:
        for _ in range(min(max(n - len(self._ready), 0), len(self._arqcs))):
            self._ready.append(self._build())

    def next(self) -> Call | None:  # type: ignore[override]
        if self._ready:
            return self._ready.popleft()
        if not self._arqcs:
            return None
        self.built_live += 1
        return self._build()


class MixFeed:
    """A POS-like mix: approvals (some with PIN) and declines, then captures, voids and refunds
    of earlier approvals, and retries of earlier requests under the same key (which must get
    the first answer back: a different answer is counted in ``retry_mismatches``)."""

    def __init__(
        self,
        fleet: Fleet,
        pin_cards: dict[str, str],
        weights: dict[str, int] | None = None,
        seed: int = 7,
        arqcs: Sequence[tuple[CardProfile, Any]] = (),
    ) -> None:
        weights = dict(MIX_WEIGHTS if weights is None else weights)
        for kind in HOOKS_ONLY:
            weights.pop(kind, None)
        pin_profiles = [c for c in APPROVALS if c.pan in pin_cards]
        if not pin_profiles:
            weights.pop("pin", None)
        if not arqcs:
            weights.pop("emv", None)
        self.weights = weights
        self.fleet = fleet
        self._rng = random.Random(seed)
        self._kinds = [k for k, w in weights.items() if w > 0]
        self._weights = [weights[k] for k in self._kinds]
        self._feeds = {
            "approve": CardFeed(fleet, APPROVALS, "approve"),
            "decline": CardFeed(fleet, DECLINES, "decline"),
        }
        if pin_profiles:
            self._feeds["pin"] = CardFeed(fleet, pin_profiles, "pin", pin_cards)
        self._chips = ChipFeed(fleet, arqcs) if arqcs else None
        self._terminals = itertools.cycle([t for t, _ in fleet.terminals])
        self._approved: deque[tuple[str, str, int, str]] = deque(maxlen=5000)
        self._captured: deque[tuple[str, str, int, str]] = deque(maxlen=5000)
        self._answered: deque[tuple[Call, str]] = deque(maxlen=2000)
        self.retry_mismatches = 0
        self.fallbacks = 0  # capture/void/refund/retry asked for with nothing to act on yet

    @property
    def built_live(self) -> int:
        chips = self._chips.built_live if self._chips is not None else 0
        return chips + sum(f.built_live for f in self._feeds.values())

    def prepare(self, n: int) -> None:
        total = sum(self._weights)
        if self._chips is not None:
            self._chips.prepare(int(n * self.weights.get("emv", 0) / total * 1.2) + 4)
        for kind, feed in self._feeds.items():
            share = self.weights.get(kind, 0) / total
            if kind == "approve":  # also stands in while there is nothing to capture yet
                share += sum(self.weights.get(k, 0) for k in ("capture", "void", "retry")) / total
            feed.prepare(int(n * share * 1.2) + 16)

    def next(self) -> Call:
        kind = self._rng.choices(self._kinds, self._weights)[0]
        fleet = self.fleet
        if kind in self._feeds:
            return self._feeds[kind].next()
        if kind == "emv" and self._chips is not None:
            chip = self._chips.next()
            if chip is not None:
                return chip
        if kind in ("capture", "void") and self._approved:
            terminal, tx_id, minor, currency = self._approved.popleft()
            key = fleet.next_key()
            if kind == "capture":
                req = fleet.sign(
                    terminal,
                    terminal_pb2.CaptureRequest(
                        idempotency_key=key, terminal_id=terminal, transaction_id=tx_id
                    ),
                )
                extra = (tx_id, minor, currency)
                return Call("capture", "Capture", req.SerializeToString(), key, terminal, extra)
            req_v = fleet.sign(
                terminal,
                terminal_pb2.VoidRequest(
                    idempotency_key=key, terminal_id=terminal, transaction_id=tx_id
                ),
            )
            return Call("void", "Void", req_v.SerializeToString(), key, terminal)
        if kind == "refund" and self._captured:
            terminal, tx_id, minor, currency = self._captured.popleft()
            return fleet.refund_request(terminal, tx_id, max(minor // 2, 1), currency)
        if kind == "retry" and self._answered:
            first, tx_id = self._answered.popleft()
            return Call("retry", first.method, first.payload, first.key, first.terminal, tx_id)
        self.fallbacks += 1
        return self._feeds["approve"].next()

    def on_result(self, call: Call, response: Any) -> None:
        if response is None:
            return
        if call.kind in ("approve", "pin", "decline", "emv"):
            tx_id = response.transaction_id
            approved = response.response_code == common_pb2.RESPONSE_CODE_APPROVED
            if call.kind != "decline" and approved:
                card: CardProfile = call.extra
                self._approved.append((call.terminal, tx_id, card.minor, card.currency))
            self._answered.append((call, tx_id))
        elif call.kind == "capture":
            if response.response_code == common_pb2.RESPONSE_CODE_APPROVED:
                tx_id, minor, currency = call.extra
                self._captured.append((call.terminal, tx_id, minor, currency))
        elif call.kind == "retry" and response.transaction_id != call.extra:
            self.retry_mismatches += 1


class CeilingFeed:
    """Requests of a real authorization's size for the bare echo and forwarders: one real
    encrypted, MAC'd request per terminal, without its STAN and key, plus a unique STAN and key
    appended per call (protobuf parsers merge concatenated fields). Nobody checks the MAC on
    the ceiling path, so this costs the generator about a microsecond per request."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self._terminals = itertools.cycle([t for t, _ in fleet.terminals])
        self._templates: dict[str, bytes] = {}
        self._stans = itertools.count(1)
        self.built_live = 0  # nothing to build: the templates are made in ``prepare``

    def _template(self, terminal: str) -> bytes:
        cached = self._templates.get(terminal)
        if cached is None:
            req = self.fleet.request(terminal, APPROVALS[0], "", 0)
            cached = req.SerializeToString()
            self._templates[terminal] = cached
        return cached

    def prepare(self, n: int) -> None:
        for t, _ in self.fleet.terminals:
            self._template(t)

    def next(self) -> Call:
        terminal = next(self._terminals)
        key = self.fleet.next_key()
        stan = next(self._stans) % 999_999 + 1
        payload = self._template(terminal) + stan_and_key(stan, key)
        return Call("approve", AUTHORIZE, payload, key, terminal)

    def on_result(self, call: Call, response: Any) -> None:
        """Stateless: nothing to remember."""


def response_fields(method: str, response: Any) -> tuple[str, str, str]:
    """(ISO response code, transaction id, rrn) of any TerminalService answer."""
    code = response.response_code
    iso = f"{code - 100:02d}" if code else ""
    if method == AUTHORIZE:
        return iso, response.transaction_id, response.rrn
    tx = response.transaction
    return iso, tx.transaction_id, tx.rrn


RESPONSE_TYPES: dict[str, Any] = {
    AUTHORIZE: terminal_pb2.AuthorizeResponse,
    "Capture": terminal_pb2.CaptureResponse,
    "Void": terminal_pb2.VoidResponse,
    "Refund": terminal_pb2.RefundResponse,
}
