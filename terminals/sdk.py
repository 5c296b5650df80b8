"""The terminal SDK: a POS terminal's view of the switch over grpc.aio.

``Terminal`` builds each money-moving request once (idempotency key, STAN and local time fixed
at that moment: a ``Prepared`` request) and sends it, retrying that very message on
UNAVAILABLE, DEADLINE_EXCEEDED and ABORTED. The switch's idempotency then guarantees that
retries never charge twice; resending a ``Prepared`` by hand (``send``) gives the same answer.

    async with Terminal("127.0.0.1:50051", "T-0001", "M-GROCER", stan_path="t1.json") as t:
        sale = await t.pay(1250, "EUR", pan, "2812", pin="1234")
        if sale.approved:
            await t.capture(sale.transaction_id)

Card data never leaves the terminal in clear. Each sale takes the next AES-DUKPT key of the
terminal's secure element (``terminals.secure_element``; loaded by key injection at start, see
``terminals.keys``): the card data (``CardData``: PAN, expiry, CVV2) is encrypted under its data
key, the PIN becomes an ISO 9564-1 format 4 block under its PIN key, and the request is MAC'd
(AES-CMAC) under its MAC key over the canonical form of ``payswitch.seclink``. A chip sale also
carries the card's ARQC, and the card checks the issuer's ARPC in the answer (``Chip``).
Captures, voids, refunds and batch closes take a DUKPT key of their own too, and are MAC'd the
same way (their canonical forms are in ``payswitch.seclink``).

Every answer to a money-moving request carries a response MAC under the same KSN's response
key; the SDK checks it before it reads the answer, and raises ``ResponseUntrusted`` when it is
missing or wrong: no receipt may be printed for such an answer (see that error for what to
do). An answer with ``rekey_required`` (``Result.rekey_required``) says the secure element's
counter is near its end: load a new key (``Terminal.rekey``) before it runs out. The
clear PIN exists only while its block is built; nothing the SDK prints, logs or raises contains
more than the masked PAN, and the expiry, CVV2 and PIN appear nowhere.

The switch's terminal port speaks mTLS (``[switch] tls``): pass ``credentials`` from
``terminal_credentials(certs_dir, terminal_id)`` (the terminal's own client certificate from
``payswitch-certs``); the switch refuses requests naming another terminal than the
certificate's. Without ``credentials`` the channel is plaintext (test switches only).

Tracing: given an OpenTelemetry ``tracer_provider`` (``payswitch.tracing.provider``), every
``send`` is a span, ``terminal.<operation>``, a child of the caller's current span when there is
one, else the root of a new trace, with the answer's RRN, transaction id and code; each attempt
under it is a client span whose context goes to the switch as W3C ``traceparent`` (metadata,
outside the MAC'd bytes: a retry still resends the same request). Without one, nothing is traced.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hmac
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import grpc
from google.protobuf.message import Message
from opentelemetry.trace import TracerProvider

from hsm.pinblock import PIN_MAX, PIN_MIN
from payswitch import cards, money
from payswitch.seclink import (
    canonical_response,
    card_plaintext,
    mac_input,
    operation_mac_input,
)
from payswitch.tracing import ClientSpans
from payswitch.v1 import (
    common_pb2,
    network_pb2,
    offline_pb2_grpc,
    terminal_pb2,
    terminal_pb2_grpc,
)
from terminals import keys, results
from terminals.batch import BatchCloseResult, BatchLine, BatchTotals
from terminals.errors import InvalidRequest, NotConnected, ResponseUntrusted, TerminalError
from terminals.pinpad import sim_encipher_pin_block
from terminals.results import EchoResult, Result, TransactionView
from terminals.retry import RetryPolicy, call_with_retry
from terminals.secure_element import SecureElement, Transaction
from terminals.stan import StanCounter

DEFAULT_DEADLINE_S = 2.0
DEFAULT_RETRY = RetryPolicy()

_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")

# gRPC's default reconnect backoff starts at 1 s and grows to 120 s; while it lasts, calls fail
# fast with UNAVAILABLE, so SDK retries would all land inside it. A terminal wants to see a
# restarted switch within a fraction of a second. Caller-given options take precedence.
DEFAULT_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


def terminal_credentials(certs_dir: str | Path, terminal_id: str) -> grpc.ChannelCredentials:
    """mTLS credentials of ``terminal_id`` from a ``payswitch-certs`` directory: its key and
    certificate (``terminals/<id>.key``/``.pem``), trusting the CA (``ca.pem``) that signed
    the switch's certificate. OSError when a file is missing."""
    root = Path(certs_dir)
    return grpc.ssl_channel_credentials(
        root_certificates=(root / "ca.pem").read_bytes(),
        private_key=(root / "terminals" / f"{terminal_id}.key").read_bytes(),
        certificate_chain=(root / "terminals" / f"{terminal_id}.pem").read_bytes(),
    )


# A DCC choice the cardholder accepted: (their currency, the offered rate text).
DccChoice = tuple[str, str]


class EntryMode(StrEnum):
    """How the card was read (ISO 8583 field 22, simplified)."""

    CHIP = "chip"
    CONTACTLESS = "contactless"
    MAGSTRIPE = "magstripe"
    MANUAL = "manual"


_CONTACTLESS = common_pb2.ENTRY_MODE_CONTACTLESS
_ENTRY_MODES: dict[EntryMode, common_pb2.EntryMode] = {
    EntryMode.CHIP: common_pb2.ENTRY_MODE_CHIP,
    EntryMode.CONTACTLESS: common_pb2.ENTRY_MODE_CONTACTLESS,
    EntryMode.MAGSTRIPE: common_pb2.ENTRY_MODE_MAGSTRIPE,
    EntryMode.MANUAL: common_pb2.ENTRY_MODE_MANUAL,
}


def new_idempotency_key() -> str:
    """A fresh key: 32 hex characters of a uuid4, inside the API's [A-Za-z0-9_-]{1,64}."""
    return uuid.uuid4().hex


def local_time_text(now: dt.datetime) -> str:
    """ISO 8601 local date-time to the second, without zone: '2026-11-21T14:03:05'."""
    return now.replace(tzinfo=None, microsecond=0).isoformat(timespec="seconds")


def _key(key: str | None) -> str:
    if key is None:
        return new_idempotency_key()
    if not _KEY.fullmatch(key):
        raise InvalidRequest(
            "idempotency_key: must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'",
            field="idempotency_key",
        )
    return key


def _money(amount_minor: int, currency: str, field: str = "amount") -> common_pb2.Money:
    """Integer minor units only: a float (or bool) is a programming error, refused here."""
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool):
        raise InvalidRequest(
            f"{field}.minor_units: must be an integer count of minor units",
            field=f"{field}.minor_units",
        )
    try:
        money.check_positive(amount_minor, currency, field)
    except money.MoneyError as exc:
        raise InvalidRequest(f"{exc.field}: {exc}", field=exc.field) from None
    return common_pb2.Money(minor_units=amount_minor, currency=currency)


def _digits(value: str, lo: int, hi: int) -> bool:
    return lo <= len(value) <= hi and value.isascii() and value.isdigit()


def _check_pin_and_cvv2(pin: str | None, cvv2: str | None) -> None:
    """Local checks; the messages never repeat the value."""
    if pin is not None and not _digits(pin, PIN_MIN, PIN_MAX):
        raise InvalidRequest(f"pin: must be {PIN_MIN} to {PIN_MAX} digits", field="pin")
    if cvv2 is not None and not _digits(cvv2, 3, 4):
        raise InvalidRequest("cvv2: must be 3 or 4 digits", field="cvv2")


class Chip(Protocol):
    """The chip of the card in the reader (simulator: ``terminals.chip``)."""

    async def generate_arqc(self, amount_minor: int, currency: str) -> network_pb2.EmvData:
        """GENERATE AC for an online authorization: the ARQC and the data it covers."""
        ...

    async def external_authenticate(
        self, emv: network_pb2.EmvData, response_code: int, arpc: bytes
    ) -> bool:
        """Does the issuer's ARPC authenticate this answer to our ARQC?"""
        ...


# Powers up the chip of the card whose PAN the reader just read.
ChipReader = Callable[[str], Chip]


class KeysMissing(TerminalError):
    """The secure element holds no DUKPT key: ``await Terminal.start()`` (key injection)."""


def _transaction_id(value: str, field: str = "transaction_id") -> str:
    if not value:
        raise InvalidRequest(f"{field}: is required", field=field)
    return value


@dataclass(frozen=True, slots=True)
class Prepared:
    """One request, built once, to be sent (and, if need be, sent again) unchanged.

    ``request`` holds the (encrypted) card data of a sale and is kept out of the repr; ``chip``
    is the card still in the reader, which checks the issuer's ARPC in the answer.
    """

    operation: str  # pay | capture | void | refund
    idempotency_key: str
    stan: int  # 0 for capture and void, which carry none
    request: Message = field(repr=False, compare=False)
    masked_pan: str = ""
    amount: money.Amount | None = None
    chip: Chip | None = field(default=None, repr=False, compare=False)
    ksn_counter: int = 0  # the request's DUKPT counter: its answer's MAC key


# The operation names of the canonical answer form (payswitch.seclink), by SDK operation.
_WIRE_OPERATION = {
    "pay": "authorize",
    "capture": "capture",
    "void": "void",
    "refund": "refund",
    "close_batch": "close_batch",
    "status": "get_transaction",
}


class Terminal:
    """One POS terminal talking to the switch. One channel for the Terminal's lifetime,
    opened on first use inside the running event loop; close it with ``close()`` or
    ``async with``."""

    def __init__(
        self,
        target: str,
        terminal_id: str,
        merchant_id: str,
        *,
        deadline_s: float = DEFAULT_DEADLINE_S,
        retry: RetryPolicy = DEFAULT_RETRY,
        stan_path: str | Path | None = None,
        stans: StanCounter | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
        clock: Callable[[], dt.datetime] = dt.datetime.now,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        secure_element: SecureElement | None = None,
        key_injector: keys.KeyInjector | None = None,
        chip_reader: ChipReader | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        if deadline_s <= 0:
            raise ValueError("deadline_s must be positive")
        self.target = target
        self.terminal_id = terminal_id
        self.merchant_id = merchant_id
        self.deadline_s = deadline_s
        self.retry = retry
        self.stans = stans if stans is not None else StanCounter(stan_path)
        self._credentials = credentials
        given = dict(channel_options)
        self._options = tuple({**dict(DEFAULT_CHANNEL_OPTIONS), **given}.items())
        self._clock = clock
        self._rng = rng or random.Random()  # jitter, not security
        self._sleep = sleep
        self._channel: grpc.aio.Channel | None = None
        self._stub: terminal_pb2_grpc.TerminalServiceStub | None = None
        self._se = secure_element if secure_element is not None else SecureElement()
        self._injector = key_injector
        self._injecting: asyncio.Lock | None = None
        self._chip_reader = chip_reader
        self._tracer = (
            tracer_provider.get_tracer("terminals.sdk") if tracer_provider is not None else None
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Key injection when the secure element holds no key yet (idempotent).

        ``pay`` calls it; call it yourself before ``prepare_pay``. Default injector:
        ``terminals.keys.inject_from_kif`` (the key-injection facility's process).
        """
        if keys.loaded(self._se):
            return
        if self._injecting is None:
            self._injecting = asyncio.Lock()
        async with self._injecting:
            if not keys.loaded(self._se):
                await (self._injector or keys.injector_for(self.terminal_id))(self._se)

    async def rekey(self) -> None:
        """Load a fresh initial key (a new device, counter from 1), as an answer with
        ``rekey_required`` asks. Finish the requests prepared before it first: their answers
        are MAC'd under the old key, which is gone afterwards."""
        self._se = SecureElement()
        await self.start()

    def _service(self) -> terminal_pb2_grpc.TerminalServiceStub:
        if self._stub is None:
            interceptors = [ClientSpans(self._tracer)] if self._tracer is not None else None
            if self._credentials is not None:
                self._channel = grpc.aio.secure_channel(
                    self.target, self._credentials, options=self._options, interceptors=interceptors
                )
            else:
                self._channel = grpc.aio.insecure_channel(
                    self.target, options=self._options, interceptors=interceptors
                )
            self._stub = terminal_pb2_grpc.TerminalServiceStub(self._channel)
        return self._stub

    def offline_stub(self) -> offline_pb2_grpc.OfflineServiceStub:
        """The switch's OfflineService on this terminal's own connection (``pos sync``)."""
        self._service()
        assert self._channel is not None
        return offline_pb2_grpc.OfflineServiceStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub = None

    async def connect(self, timeout_s: float | None = None) -> None:
        """Open the channel and wait until it is ready (TCP up and, with ``credentials``, the
        TLS handshake done), at most ``timeout_s`` (default: the deadline). Raises
        :class:`NotConnected` otherwise: nothing was sent, so nothing can have happened, and
        there is nothing to retry or look up. Calls work without it; it tells a connection
        that cannot work (plaintext to a TLS port, a certificate of another CA) from a request
        whose outcome is unknown."""
        self._service()
        assert self._channel is not None
        wait = self.deadline_s if timeout_s is None else timeout_s
        try:
            await asyncio.wait_for(self._channel.channel_ready(), wait)
        except TimeoutError:
            raise NotConnected(
                f"no connection to the switch at {self.target} within {wait:g} s; nothing was sent"
            ) from None

    async def __aenter__(self) -> Terminal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- building requests -----------------------------------------------------------------

    def prepare_pay(
        self,
        amount_minor: int,
        currency: str,
        pan: str,
        expiry: str,
        entry_mode: EntryMode | str = EntryMode.CHIP,
        idempotency_key: str | None = None,
        *,
        pin: str | None = None,
        cvv2: str | None = None,
        emv: network_pb2.EmvData | None = None,
        chip: Chip | None = None,
        dcc: DccChoice | None = None,
    ) -> Prepared:
        """A sale authorization, encrypted and MAC'd under the next DUKPT key; ``expiry`` is
        YYMM as on the wire. Checks what the switch would refuse anyway, so a typo costs no
        round trip (and no STAN). ``emv``: the chip's ARQC data (``pay(chip=True)`` gets it);
        ``chip``: the card that will check the ARPC. Needs the keys (``await start()``)."""
        key = _key(idempotency_key)
        amount = _money(amount_minor, currency)
        try:
            mode = _ENTRY_MODES[EntryMode(entry_mode)]
        except ValueError:
            raise InvalidRequest(
                "entry_mode: must be chip, contactless, magstripe or manual", field="entry_mode"
            ) from None
        try:
            cards.check_pan(pan)
            cards.check_expiry(expiry)
        except cards.CardError as exc:
            raise InvalidRequest(f"{exc.field}: {exc}", field=exc.field) from None
        _check_pin_and_cvv2(pin, cvv2)
        if emv is not None and mode not in (common_pb2.ENTRY_MODE_CHIP, _CONTACTLESS):
            raise InvalidRequest("emv: chip data needs entry mode chip or contactless", field="emv")
        if not keys.loaded(self._se):
            raise KeysMissing("no DUKPT key loaded: await Terminal.start() (key injection)")
        stan = self.stans.next()
        txn = self._se.begin()  # the next KSN: a fresh key for this request only
        request = terminal_pb2.AuthorizeRequest(
            idempotency_key=key,
            terminal_id=self.terminal_id,
            merchant_id=self.merchant_id,
            stan=stan,
            local_time=local_time_text(self._clock()),
            amount=amount,
            entry_mode=mode,
            encrypted_card=terminal_pb2.EncryptedCard(
                ksn=bytes(txn.ksn),
                ciphertext=txn.encrypt_card_data(card_plaintext(pan, expiry, cvv2 or "")),
            ),
        )
        if pin is not None:
            request.pin_block = sim_encipher_pin_block(txn.pin_encrypt_block, pin, pan)
        if emv is not None:
            request.emv.CopyFrom(emv)
        if dcc is not None:  # the cardholder chose their own currency (QuoteDcc's offer)
            request.dcc_currency, request.dcc_rate = dcc
        request.mac = txn.mac(mac_input(request))
        return Prepared(
            "pay",
            key,
            stan,
            request,
            cards.mask_pan(pan),
            money.Amount(amount_minor, currency),
            chip if emv is not None else None,
            txn.ksn.counter,
        )

    def _begin(self) -> Transaction:
        """The next DUKPT transaction of the secure element (KeysMissing without a key)."""
        if not keys.loaded(self._se):
            raise KeysMissing("no DUKPT key loaded: await Terminal.start() (key injection)")
        return self._se.begin()

    def _sign(self, request: Any) -> int:
        """Put a fresh KSN and the request MAC on a capture, void, refund or batch close;
        returns the KSN's counter (the answer's MAC key)."""
        txn = self._begin()
        request.ksn = bytes(txn.ksn)
        request.mac = txn.mac(operation_mac_input(request))
        return txn.ksn.counter

    def _check_answer(
        self, operation: str, counter: int, response: Any, key: str = "", stan: int = 0
    ) -> None:
        """Raise ResponseUntrusted unless the answer's MAC verifies under the response key
        of the request's KSN (constant-time compare)."""
        expected = self._se.transaction_at(counter).response_mac(
            canonical_response(_WIRE_OPERATION[operation], response)
        )
        if not response.mac or not hmac.compare_digest(expected, bytes(response.mac)):
            what = "missing" if not response.mac else "does not verify"
            raise ResponseUntrusted(
                f"{operation}: the answer's response MAC {what}; do not print a receipt: "
                "send the same request again, or look it up, and reverse if still in doubt",
                operation=operation,
                idempotency_key=key,
                stan=stan,
            )

    def prepare_capture(
        self,
        transaction_id: str,
        amount: money.Amount | None = None,
        idempotency_key: str | None = None,
    ) -> Prepared:
        """Capture ``amount`` (at most the authorized amount), or all of it when None."""
        key = _key(idempotency_key)
        request = terminal_pb2.CaptureRequest(
            idempotency_key=key,
            terminal_id=self.terminal_id,
            transaction_id=_transaction_id(transaction_id),
        )
        if amount is not None:
            request.amount.CopyFrom(_money(amount.minor_units, amount.currency))
        counter = self._sign(request)
        return Prepared("capture", key, 0, request, amount=amount, ksn_counter=counter)

    def prepare_void(self, transaction_id: str, idempotency_key: str | None = None) -> Prepared:
        key = _key(idempotency_key)
        request = terminal_pb2.VoidRequest(
            idempotency_key=key,
            terminal_id=self.terminal_id,
            transaction_id=_transaction_id(transaction_id),
        )
        counter = self._sign(request)
        return Prepared("void", key, 0, request, ksn_counter=counter)

    def prepare_refund(
        self,
        transaction_id: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str | None = None,
    ) -> Prepared:
        """Refund part or all of a captured sale; the refund gets its own STAN."""
        key = _key(idempotency_key)
        amount = _money(amount_minor, currency)
        original = _transaction_id(transaction_id, "original_transaction_id")
        if not keys.loaded(self._se):
            raise KeysMissing("no DUKPT key loaded: await Terminal.start() (key injection)")
        stan = self.stans.next()
        request = terminal_pb2.RefundRequest(
            idempotency_key=key,
            terminal_id=self.terminal_id,
            original_transaction_id=original,
            amount=amount,
            stan=stan,
            local_time=local_time_text(self._clock()),
        )
        counter = self._sign(request)
        return Prepared(
            "refund",
            key,
            stan,
            request,
            amount=money.Amount(amount_minor, currency),
            ksn_counter=counter,
        )

    # -- sending ---------------------------------------------------------------------------

    async def _call(
        self, method: Callable[..., Any], request: Message, what: str, key: str = "", stan: int = 0
    ) -> Any:
        return await call_with_retry(
            lambda timeout: method(request, timeout=timeout),
            self.retry,
            self.deadline_s,
            what=what,
            idempotency_key=key,
            stan=stan,
            rng=self._rng,
            sleep=self._sleep,
        )

    async def send(self, prepared: Prepared) -> Result:
        """Send a prepared request (again): same key, same STAN, same content. With a tracer
        provider, as one span (module docstring)."""
        if self._tracer is None:
            return await self._send(prepared)
        with self._tracer.start_as_current_span(
            f"terminal.{prepared.operation}",
            attributes={
                "payswitch.terminal_id": self.terminal_id,
                "payswitch.operation": prepared.operation,
                "payswitch.stan": prepared.stan,
            },
            record_exception=False,
        ) as span:
            result = await self._send(prepared)
            span.set_attributes(
                {
                    "payswitch.response_code": result.iso_code,
                    "payswitch.rrn": result.rrn,
                    "payswitch.tx_id": result.transaction_id,
                }
            )
            return result

    async def _send(self, prepared: Prepared) -> Result:
        svc = self._service()
        methods = {
            "pay": svc.Authorize,
            "capture": svc.Capture,
            "void": svc.Void,
            "refund": svc.Refund,
        }
        resp = await self._call(
            methods[prepared.operation],
            prepared.request,
            prepared.operation,
            prepared.idempotency_key,
            prepared.stan,
        )
        self._check_answer(
            prepared.operation,
            prepared.ksn_counter,
            resp,
            prepared.idempotency_key,
            prepared.stan,
        )
        if prepared.operation == "pay":
            result = results.from_authorize(
                resp, prepared.idempotency_key, prepared.stan, prepared.masked_pan
            )
            if prepared.chip is not None:
                request = prepared.request
                assert isinstance(request, terminal_pb2.AuthorizeRequest)  # built by prepare_pay
                ok = bool(resp.arpc) and await prepared.chip.external_authenticate(
                    request.emv, resp.response_code, resp.arpc
                )
                result = dataclasses.replace(result, arpc_verified=ok)
        else:
            result = results.from_follow_up(
                prepared.operation,
                resp.response_code,
                resp.transaction if resp.HasField("transaction") else None,
                resp.message,
                prepared.idempotency_key,
                prepared.amount,
            )
        if resp.rekey_required:
            result = dataclasses.replace(result, rekey_required=True)
        return result

    async def resend(self, request: terminal_pb2.AuthorizeRequest, masked_pan: str = "") -> Result:
        """Send again a sale that another device built (an earlier run of this terminal:
        ``terminals.kept``), byte for byte, so the switch replays the answer it kept for its
        key, or processes it if it never arrived.

        The answer is MAC'd under the earlier device's response key, which this secure element
        does not hold. It is trusted only as far as a lookup by the same key, MAC'd both ways
        under this device's own fresh KSN, confirms it (same transaction, code, amount, auth
        code and RRN); otherwise :class:`ResponseUntrusted`. Needs the keys (``start()``).
        """
        key, stan = request.idempotency_key, request.stan
        resp = await self._call(self._service().Authorize, request, "pay", key, stan)
        try:
            seen = await self.status(idempotency_key=key)
        except TerminalError as exc:
            raise ResponseUntrusted(
                f"pay: the replayed answer could not be confirmed by a lookup ({exc.message}); "
                "do not print a receipt",
                operation="pay",
                idempotency_key=key,
                stan=stan,
            ) from None
        result = results.from_authorize(resp, key, stan, masked_pan)
        same = (
            seen.transaction_id == result.transaction_id
            and seen.iso_code == result.iso_code
            and seen.amount == result.amount
            and seen.auth_code == result.auth_code
            and seen.rrn == result.rrn
        )
        if not same:
            raise ResponseUntrusted(
                "pay: the replayed answer differs from the switch's record; do not print a receipt",
                operation="pay",
                idempotency_key=key,
                stan=stan,
            )
        return result

    # -- the operations --------------------------------------------------------------------

    async def pay(
        self,
        amount_minor: int,
        currency: str,
        pan: str,
        expiry: str,
        entry_mode: EntryMode | str = EntryMode.CHIP,
        idempotency_key: str | None = None,
        *,
        pin: str | None = None,
        cvv2: str | None = None,
        chip: bool = False,
    ) -> Result:
        """Authorize a sale. A decline is a Result with ``approved`` False, not an error.

        ``pin``: the cardholder's PIN (sent only as a format 4 block); ``cvv2``: as printed on
        the card; ``chip``: read the card's chip (``chip_reader``) for an ARQC; the answer's
        ARPC is then checked by the card (``Result.arpc_verified``)."""
        await self.start()
        emv = card = None
        if chip:
            card, emv = await self.read_chip(pan, amount_minor, currency)
        return await self.send(
            self.prepare_pay(
                amount_minor,
                currency,
                pan,
                expiry,
                entry_mode,
                idempotency_key,
                pin=pin,
                cvv2=cvv2,
                emv=emv,
                chip=card,
            )
        )

    async def read_chip(
        self, pan: str, amount_minor: int, currency: str
    ) -> tuple[Chip, network_pb2.EmvData]:
        """Power up the card's chip and have it generate the ARQC for this amount."""
        if self._chip_reader is None:
            raise InvalidRequest("chip: this terminal has no chip reader", field="chip")
        card = self._chip_reader(pan)
        return card, await card.generate_arqc(amount_minor, currency)

    async def capture(
        self,
        transaction_id: str,
        amount: money.Amount | None = None,
        idempotency_key: str | None = None,
    ) -> Result:
        await self.start()
        return await self.send(self.prepare_capture(transaction_id, amount, idempotency_key))

    async def void(self, transaction_id: str, idempotency_key: str | None = None) -> Result:
        await self.start()
        return await self.send(self.prepare_void(transaction_id, idempotency_key))

    async def refund(
        self,
        transaction_id: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str | None = None,
    ) -> Result:
        await self.start()
        return await self.send(
            self.prepare_refund(transaction_id, amount_minor, currency, idempotency_key)
        )

    async def status(
        self, *, transaction_id: str | None = None, idempotency_key: str | None = None
    ) -> TransactionView:
        """Look a transaction up by its id or by the idempotency key that created it (the way
        to learn the outcome of a request that ended in SwitchUnavailable)."""
        if (transaction_id is None) == (idempotency_key is None):
            raise ValueError("give exactly one of transaction_id or idempotency_key")
        request = terminal_pb2.GetTransactionRequest(terminal_id=self.terminal_id)
        if transaction_id is not None:
            request.transaction_id = _transaction_id(transaction_id)
        else:
            request.idempotency_key = _key(idempotency_key)
        await self.start()
        counter = self._sign(request)  # the answer carries money state: MAC'd both ways
        resp = await self._call(self._service().GetTransaction, request, "status")
        self._check_answer("status", counter, resp)
        return TransactionView.from_proto(resp.transaction)

    async def close_batch(
        self,
        totals: BatchTotals | Sequence[BatchLine] = (),
        idempotency_key: str | None = None,
    ) -> BatchCloseResult:
        """Close the open batch (ISO 8583 0500/0510): send this terminal's own totals, get the
        switch's totals per currency and scheme and whether they agree. Retried under one
        idempotency key, so a retry never closes a second batch."""
        lines = (
            totals.to_proto()
            if isinstance(totals, BatchTotals)
            else [line.to_proto() for line in totals]
        )
        key = _key(idempotency_key)
        await self.start()
        request = terminal_pb2.CloseBatchRequest(
            idempotency_key=key,
            terminal_id=self.terminal_id,
            merchant_id=self.merchant_id,
            terminal_totals=lines,
        )
        counter = self._sign(request)
        resp = await self._call(self._service().CloseBatch, request, "close_batch", key)
        self._check_answer("close_batch", counter, resp, key)
        return BatchCloseResult.from_proto(resp)

    async def quote_dcc(
        self, amount_minor: int, currency: str, card_bin: str
    ) -> terminal_pb2.QuoteDccResponse:
        """The switch's DCC offer for a card (its first six digits) at this merchant."""
        request = terminal_pb2.QuoteDccRequest(
            terminal_id=self.terminal_id,
            merchant_id=self.merchant_id,
            amount=_money(amount_minor, currency),
            card_bin=card_bin[:6],
        )
        resp: terminal_pb2.QuoteDccResponse = await self._call(
            self._service().QuoteDcc, request, "quote_dcc"
        )
        return resp

    async def echo(self, message: str = "") -> EchoResult:
        """Liveness and sign-on; also measures the round trip."""
        request = terminal_pb2.EchoRequest(terminal_id=self.terminal_id, message=message)
        started = time.perf_counter()
        resp = await self._call(self._service().Echo, request, "echo")
        return EchoResult(
            message=resp.message,
            switch_id=resp.switch_id,
            server_time_ms=resp.server_time_ms,
            round_trip_ms=(time.perf_counter() - started) * 1000.0,
        )


class SyncTerminal:
    """Blocking wrapper for scripts and REPLs: one private event loop (asyncio.Runner) that
    owns the Terminal and its channel. Not for use from inside a running event loop."""

    def __init__(self, target: str, terminal_id: str, merchant_id: str, **kwargs: Any) -> None:
        self._runner = asyncio.Runner()
        self.terminal = Terminal(target, terminal_id, merchant_id, **kwargs)

    def send(self, prepared: Prepared) -> Result:
        return self._runner.run(self.terminal.send(prepared))

    def start(self) -> None:
        self._runner.run(self.terminal.start())

    def pay(
        self,
        amount_minor: int,
        currency: str,
        pan: str,
        expiry: str,
        entry_mode: EntryMode | str = EntryMode.CHIP,
        idempotency_key: str | None = None,
        *,
        pin: str | None = None,
        cvv2: str | None = None,
        chip: bool = False,
    ) -> Result:
        return self._runner.run(
            self.terminal.pay(
                amount_minor,
                currency,
                pan,
                expiry,
                entry_mode,
                idempotency_key,
                pin=pin,
                cvv2=cvv2,
                chip=chip,
            )
        )

    def capture(
        self,
        transaction_id: str,
        amount: money.Amount | None = None,
        idempotency_key: str | None = None,
    ) -> Result:
        return self._runner.run(self.terminal.capture(transaction_id, amount, idempotency_key))

    def void(self, transaction_id: str, idempotency_key: str | None = None) -> Result:
        return self._runner.run(self.terminal.void(transaction_id, idempotency_key))

    def refund(
        self,
        transaction_id: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str | None = None,
    ) -> Result:
        return self._runner.run(
            self.terminal.refund(transaction_id, amount_minor, currency, idempotency_key)
        )

    def status(
        self, *, transaction_id: str | None = None, idempotency_key: str | None = None
    ) -> TransactionView:
        return self._runner.run(
            self.terminal.status(transaction_id=transaction_id, idempotency_key=idempotency_key)
        )

    def echo(self, message: str = "") -> EchoResult:
        return self._runner.run(self.terminal.echo(message))

    def close_batch(
        self,
        totals: BatchTotals | Sequence[BatchLine] = (),
        idempotency_key: str | None = None,
    ) -> BatchCloseResult:
        return self._runner.run(self.terminal.close_batch(totals, idempotency_key))

    def close(self) -> None:
        try:
            self._runner.run(self.terminal.close())
        finally:
            self._runner.close()

    def __enter__(self) -> SyncTerminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
