"""The terminal link's security envelope: what the terminal and the switch must agree on byte
for byte, in one place (pure functions, no keys, no HSM). An integrator writing a terminal in
another language implements exactly what this docstring says; docs/terminal-protocol.md writes
it out with the rest of the protocol, and docs/vectors/terminal-v1.json has test vectors.

- **Card data**: the plaintext of ``EncryptedCard.ciphertext`` is a serialised ``CardData``
  (PAN, expiry YYMM, CVV2), encrypted by the terminal's secure element under its AES-DUKPT
  data key (``terminals.secure_element``); the switch decrypts it in its HSM (``hsm.dukpt``).
- **Request MAC**: every request but Echo (Authorize, Capture, Void, Refund, CloseBatch and
  GetTransaction) carries the KSN of a fresh DUKPT transaction and an AES-CMAC (16 bytes)
  under that KSN's MAC-generation key (X9.24-3 key usage 0x2000) over the request's canonical
  form below.
- **Response MAC**: every answer to those requests carries an AES-CMAC (16 bytes) under the
  MAC-verification key (key usage 0x2001, "MAC, response") of the *request's* KSN over
  :func:`canonical_response`. The terminal checks it; an answer that does not verify is not
  to be trusted.
- **Fingerprint input** (:func:`fingerprint_input`): the request's canonical bytes with an
  empty idempotency key. The switch turns them into a keyed digest in the HSM, so a retry with
  the same bytes (the same KSN included) matches, any other content does not, and no PAN is in
  it (not even hashed: the card is represented by its ciphertext and KSN).

Encoding. ``TLV(tag, value)`` is ``tag`` (1 byte) || length of ``value`` (4 bytes, big-endian)
|| ``value``. Strings are UTF-8, integers decimal ASCII (``-`` before a negative one), booleans
``1`` or ``0``, byte fields raw. A field that is absent is still present, with length 0, so no
field can be dropped or its value moved into another.

Request canonical forms (version 1): ASCII ``PSW-MAC-1`` followed by TLVs numbered from 1, the
operation's name first (it separates the operations' forms: the same bytes can never verify as
another operation):

- ``authorize``: operation, terminal_id, merchant_id, stan, local_time, amount.minor_units,
  amount.currency, entry_mode (enum number), encrypted_card.ksn, encrypted_card.ciphertext,
  pin_block, emv (:func:`emv_bytes`), idempotency_key;
- ``capture``: operation, terminal_id, transaction_id, amount.minor_units, amount.currency
  (both empty when ``amount`` is absent), ksn, idempotency_key;
- ``void``: operation, terminal_id, transaction_id, ksn, idempotency_key;
- ``refund``: operation, terminal_id, original_transaction_id, amount.minor_units,
  amount.currency, stan, local_time, ksn, idempotency_key;
- ``close_batch``: operation, terminal_id, merchant_id, totals, ksn, idempotency_key; ``totals``
  is, for each ``terminal_totals`` line in the order sent, its length (4 bytes, big-endian) ||
  TLV(1, currency) || TLV(2, scheme enum number) || TLV(3, sale_count) || TLV(4, sale_minor) ||
  TLV(5, refund_count) || TLV(6, refund_minor) || TLV(7, void_count);
- ``get_transaction``: operation, terminal_id, transaction_id, idempotency_key (the one that is
  not the lookup is empty), ksn. Its answer carries money state, so it is MAC'd too.

For example a void is ``PSW-MAC-1`` || 01 00000004 ``void`` || 02 00000006 ``T-0001`` || 03
00000020 <transaction id> || 04 0000000C <KSN> || 05 <length> <idempotency key>.

Response canonical form (version 1): ASCII ``PSW-RMAC-1`` || TLV(0, operation name as above)
|| for every field of the answer message but ``mac``, in field-number order, TLV(field number,
value). A scalar's value is encoded as above (proto3 defaults included: 0, empty, ``0``); an
enum is its number; a sub-message (``Money``, ``Transaction``) is, recursively, the TLVs of all
its fields by field number (a sub-message absent from the wire has length 0; one present but
empty still has its fields' TLVs); a repeated sub-message
(``BatchTotal``, ``BatchMismatch``) is, for each element in order, its length (4 bytes,
big-endian) || its TLVs. The fields covered are the ones of version 1 (:data:`RESPONSE_FIELDS`);
a field added later is covered under a new version tag, except the scalars listed in
:data:`RESPONSE_FIELDS_ADDED`: each is appended, after the version-1 fields and in field-number
order, as TLV(field number, value) only when it is not at its proto3 default. An answer that
does not use them has exactly its version-1 form (the published vectors hold), and one that
does cannot lose, gain or change them without its MAC failing. So far: the authorization
answer's ``risk_reason`` (15) and ``pin_required`` (16), set by the switch's risk rules, and
its cross-border fields (issue 16): ``billing_minor_units`` (17), ``billing_currency`` (18),
``conversion_rate`` (19), ``rate_table`` (20), ``dcc_markup_bps`` (21); and the same for
a ``Transaction`` (20..27: billing amount, currency, rate, table, billing captured, markup,
DCC local amount and currency).

Protobuf serialisation is not canonical across implementations, so nothing here MACs
serialised messages; ``EmvData`` is encoded field by field (:func:`emv_bytes`). Changing a
field list means a new version tag.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from google.protobuf.message import Message

from payswitch.v1 import network_pb2, terminal_pb2

OPERATION = "authorize"
MAC_DOMAIN = b"PSW-MAC-1"
RESPONSE_MAC_DOMAIN = b"PSW-RMAC-1"


def tlv(tag: int, value: bytes) -> bytes:
    """``tag`` (1 byte) || length (4 bytes, big-endian) || ``value``."""
    return tag.to_bytes(1, "big") + len(value).to_bytes(4, "big") + value


def _form(domain: bytes, fields: Sequence[bytes]) -> bytes:
    out = bytearray(domain)
    for tag, value in enumerate(fields, start=1):
        out += tlv(tag, value)
    return bytes(out)


def canonical_request(
    *,
    terminal_id: str,
    merchant_id: str,
    stan: int,
    local_time: str,
    amount_minor: int,
    currency: str,
    entry_mode: str | int,
    ksn: bytes,
    card_ciphertext: bytes,
    pin_block: bytes = b"",
    emv_data: bytes = b"",
    idempotency_key: str = "",
    operation: str = "authorize",
    dcc_currency: str = "",
    dcc_rate: str = "",
) -> bytes:
    """The bytes an authorization's request MAC covers (module docstring: the layout); a DCC
    choice (issue 16) is appended as TLV(14, dcc_currency) || TLV(15, dcc_rate) only when set."""
    fields: list[bytes] = [
        operation.encode(),
        terminal_id.encode(),
        merchant_id.encode(),
        str(int(stan)).encode(),
        local_time.encode(),
        str(int(amount_minor)).encode(),
        currency.encode(),
        str(entry_mode).encode(),
        bytes(ksn),
        bytes(card_ciphertext),
        bytes(pin_block),
        bytes(emv_data),
        idempotency_key.encode(),
    ]
    if dcc_currency or dcc_rate:
        fields += [dcc_currency.encode(), dcc_rate.encode()]
    return _form(MAC_DOMAIN, fields)


class _Field(Protocol):
    """What the MAC needs of a protobuf field descriptor (pure-Python or upb)."""

    @property
    def name(self) -> str: ...

    @property
    def number(self) -> int: ...


_EMV_FIELDS: tuple[_Field, ...] = tuple(
    sorted(network_pb2.EmvData.DESCRIPTOR.fields, key=lambda f: f.number)
)


def emv_bytes(emv: network_pb2.EmvData | None) -> bytes:
    """Canonical bytes of chip data for the MAC: empty when absent, else every field in
    field-number order as ``number (1 byte) || length (2 bytes, big-endian) || value``
    (strings UTF-8), present even when empty, so no value can move to another field."""
    if emv is None:
        return b""
    out = bytearray()
    for f in _EMV_FIELDS:
        value = getattr(emv, f.name)
        raw = value.encode() if isinstance(value, str) else bytes(value)
        out += f.number.to_bytes(1, "big") + len(raw).to_bytes(2, "big") + raw
    return bytes(out)


def mac_fields(req: terminal_pb2.AuthorizeRequest) -> dict[str, Any]:
    """Keyword arguments of :func:`canonical_request` for an authorization request."""
    return {
        "operation": OPERATION,
        "terminal_id": req.terminal_id,
        "merchant_id": req.merchant_id,
        "stan": req.stan,
        "local_time": req.local_time,
        "amount_minor": req.amount.minor_units,
        "currency": req.amount.currency,
        "entry_mode": int(req.entry_mode),
        "ksn": bytes(req.encrypted_card.ksn),
        "card_ciphertext": bytes(req.encrypted_card.ciphertext),
        "pin_block": bytes(req.pin_block),
        "emv_data": emv_bytes(req.emv if req.HasField("emv") else None),
        "idempotency_key": req.idempotency_key,
        "dcc_currency": req.dcc_currency,
        "dcc_rate": req.dcc_rate,
    }


def mac_input(req: terminal_pb2.AuthorizeRequest) -> bytes:
    """The bytes the request MAC covers."""
    return canonical_request(**mac_fields(req))


def fingerprint_input(fields: dict[str, Any]) -> bytes:
    """Idempotency fingerprint input: the MAC'd content without the idempotency key."""
    return canonical_request(**{**fields, "idempotency_key": ""})


# --- the other money-moving requests ----------------------------------------------------------


def _num(value: int) -> bytes:
    return str(int(value)).encode()


def canonical_capture(req: terminal_pb2.CaptureRequest, idempotency_key: str) -> bytes:
    has_amount = req.HasField("amount")
    return _form(
        MAC_DOMAIN,
        [
            b"capture",
            req.terminal_id.encode(),
            req.transaction_id.encode(),
            _num(req.amount.minor_units) if has_amount else b"",
            req.amount.currency.encode() if has_amount else b"",
            bytes(req.ksn),
            idempotency_key.encode(),
        ],
    )


def canonical_void(req: terminal_pb2.VoidRequest, idempotency_key: str) -> bytes:
    return _form(
        MAC_DOMAIN,
        [
            b"void",
            req.terminal_id.encode(),
            req.transaction_id.encode(),
            bytes(req.ksn),
            idempotency_key.encode(),
        ],
    )


def canonical_refund(req: terminal_pb2.RefundRequest, idempotency_key: str) -> bytes:
    return _form(
        MAC_DOMAIN,
        [
            b"refund",
            req.terminal_id.encode(),
            req.original_transaction_id.encode(),
            _num(req.amount.minor_units),
            req.amount.currency.encode(),
            _num(req.stan),
            req.local_time.encode(),
            bytes(req.ksn),
            idempotency_key.encode(),
        ],
    )


def _totals_bytes(lines: Sequence[terminal_pb2.BatchTotal]) -> bytes:
    out = bytearray()
    for t in lines:
        line = b"".join(
            tlv(tag, value)
            for tag, value in enumerate(
                (
                    t.currency.encode(),
                    _num(t.scheme),
                    _num(t.sale_count),
                    _num(t.sale_minor),
                    _num(t.refund_count),
                    _num(t.refund_minor),
                    _num(t.void_count),
                ),
                start=1,
            )
        )
        out += len(line).to_bytes(4, "big") + line
    return bytes(out)


def canonical_close_batch(req: terminal_pb2.CloseBatchRequest, idempotency_key: str) -> bytes:
    return _form(
        MAC_DOMAIN,
        [
            b"close_batch",
            req.terminal_id.encode(),
            req.merchant_id.encode(),
            _totals_bytes(req.terminal_totals),
            bytes(req.ksn),
            idempotency_key.encode(),
        ],
    )


def canonical_get_transaction(req: terminal_pb2.GetTransactionRequest) -> bytes:
    return _form(
        MAC_DOMAIN,
        [
            b"get_transaction",
            req.terminal_id.encode(),
            req.transaction_id.encode(),
            req.idempotency_key.encode(),
            bytes(req.ksn),
        ],
    )


OperationRequest = (
    terminal_pb2.CaptureRequest
    | terminal_pb2.VoidRequest
    | terminal_pb2.RefundRequest
    | terminal_pb2.CloseBatchRequest
    | terminal_pb2.GetTransactionRequest
)


def operation_of(req: OperationRequest) -> str:
    """The operation name a follow-up request's canonical forms carry."""
    if isinstance(req, terminal_pb2.CaptureRequest):
        return "capture"
    if isinstance(req, terminal_pb2.VoidRequest):
        return "void"
    if isinstance(req, terminal_pb2.RefundRequest):
        return "refund"
    if isinstance(req, terminal_pb2.GetTransactionRequest):
        return "get_transaction"
    return "close_batch"


def operation_mac_input(req: OperationRequest, idempotency_key: str | None = None) -> bytes:
    """The bytes a Capture, Void, Refund, CloseBatch or GetTransaction request MAC covers;
    with ``idempotency_key=""`` the fingerprint input (same content, no key; a lookup has no
    idempotency key: its ``idempotency_key`` is what it looks up)."""
    if isinstance(req, terminal_pb2.GetTransactionRequest):
        return canonical_get_transaction(req)
    key = req.idempotency_key if idempotency_key is None else idempotency_key
    if isinstance(req, terminal_pb2.CaptureRequest):
        return canonical_capture(req, key)
    if isinstance(req, terminal_pb2.VoidRequest):
        return canonical_void(req, key)
    if isinstance(req, terminal_pb2.RefundRequest):
        return canonical_refund(req, key)
    return canonical_close_batch(req, key)


# --- answers ----------------------------------------------------------------------------------

# Version 1 of the response form covers these fields (by number) of each message; a unit test
# holds them (with RESPONSE_FIELDS_ADDED) equal to the schema's, so a field added to an answer
# needs a decision (version 2, or an added scalar below).
RESPONSE_FIELDS: dict[str, tuple[int, ...]] = {
    "payswitch.v1.AuthorizeResponse": tuple(range(1, 14)),
    "payswitch.v1.CaptureResponse": (1, 2, 3, 4),
    "payswitch.v1.VoidResponse": (1, 2, 3, 4),
    "payswitch.v1.RefundResponse": (1, 2, 3, 4),
    "payswitch.v1.CloseBatchResponse": tuple(range(1, 11)),
    "payswitch.v1.GetTransactionResponse": (1, 2),
    "payswitch.v1.Money": (1, 2),
    "payswitch.v1.Transaction": tuple(range(1, 20)),
    "payswitch.v1.BatchTotal": tuple(range(1, 8)),
    "payswitch.v1.BatchMismatch": (1, 2, 3, 4, 5),
}

# Scalars added after version 1, covered only when set (module docstring): an answer without
# them keeps its version-1 form byte for byte.
RESPONSE_FIELDS_ADDED: dict[str, tuple[int, ...]] = {
    "payswitch.v1.AuthorizeResponse": (15, 16, 17, 18, 19, 20, 21),
    "payswitch.v1.Transaction": (20, 21, 22, 23, 24, 25, 26, 27),
}


def _scalar(value: object) -> bytes:
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value
    raise TypeError(f"no canonical form for {type(value).__name__}")


def _message_bytes(msg: Message) -> bytes:
    desc = msg.DESCRIPTOR
    numbers = RESPONSE_FIELDS[desc.full_name]
    out = bytearray()
    for number in numbers:
        f = desc.fields_by_number[number]
        value = getattr(msg, f.name)
        if f.message_type is None:
            raw = _scalar(value)
        elif f.is_repeated:
            raw = b"".join(len(b).to_bytes(4, "big") + b for b in map(_message_bytes, value))
        else:
            raw = _message_bytes(value) if msg.HasField(f.name) else b""
        out += tlv(number, raw)
    for number in RESPONSE_FIELDS_ADDED.get(desc.full_name, ()):
        f = desc.fields_by_number[number]
        value = getattr(msg, f.name)
        if value != f.default_value:
            out += tlv(number, _scalar(value))
    return bytes(out)


def canonical_response(operation: str, response: Message) -> bytes:
    """The bytes a response MAC covers: every version-1 field of the answer but ``mac``."""
    return RESPONSE_MAC_DOMAIN + tlv(0, operation.encode()) + _message_bytes(response)


def card_plaintext(pan: str, expiry: str, cvv2: str = "") -> bytes:
    """The bytes a terminal encrypts into ``EncryptedCard.ciphertext``."""
    return terminal_pb2.CardData(pan=pan, expiry=expiry, cvv2=cvv2).SerializeToString()


def parse_card_data(plaintext: bytes) -> terminal_pb2.CardData:
    """Decrypted card data as a message; raises ``google.protobuf.message.DecodeError``."""
    return terminal_pb2.CardData.FromString(plaintext)
