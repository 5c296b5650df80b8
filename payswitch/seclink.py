"""The terminal link's security envelope: what the terminal and the switch must agree on byte
for byte, in one place (pure functions, no keys, no HSM).

- **Card data**: the plaintext of ``EncryptedCard.ciphertext`` is a serialised ``CardData``
  (PAN, expiry YYMM, CVV2), encrypted by the terminal's secure element under its AES-DUKPT
  data key (``terminals.secure_element``); the switch decrypts it in its HSM (``hsm.dukpt``).
- **Request MAC**: AES-CMAC under the DUKPT MAC key of the same KSN over
  :func:`canonical_request` (version ``PSW-MAC-1``, below) of the fields :func:`mac_fields` picks
  from an ``AuthorizeRequest``: every field except the MAC itself and the deprecated clear
  ``card`` (which the switch refuses anyway). The chip data enters as :func:`emv_bytes`.
- **Fingerprint input** (:func:`fingerprint_input`): the same canonical bytes without the
  idempotency key. The switch turns them into a keyed digest in the HSM, so a retry with the
  same bytes matches, any other content does not, and no PAN is in it (not even hashed: the
  card is represented by its ciphertext and KSN).

Canonical form (version 1): ASCII ``PSW-MAC-1`` followed by the fields of
:func:`canonical_request`, in its order, each as ``tag (1 byte) || length (4 bytes,
big-endian) || value``. Strings are UTF-8, integers are decimal ASCII, byte fields raw; absent
optional fields are present with length 0, so a field can be neither dropped nor moved into
another. Changing the field list means a new version tag.

Protobuf serialisation is not canonical across implementations, so nothing here MACs
serialised messages; ``EmvData`` is encoded field by field (:func:`emv_bytes`).
"""

from __future__ import annotations

from typing import Any, Protocol

from payswitch.v1 import network_pb2, terminal_pb2

OPERATION = "authorize"
MAC_DOMAIN = b"PSW-MAC-1"


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
) -> bytes:
    """The bytes a request MAC covers (see module docstring for the layout)."""
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
    out = bytearray(MAC_DOMAIN)
    for tag, value in enumerate(fields, start=1):
        out += tag.to_bytes(1, "big") + len(value).to_bytes(4, "big") + value
    return bytes(out)


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
    }


def mac_input(req: terminal_pb2.AuthorizeRequest) -> bytes:
    """The bytes the request MAC covers."""
    return canonical_request(**mac_fields(req))


def fingerprint_input(fields: dict[str, Any]) -> bytes:
    """Idempotency fingerprint input: the MAC'd content without the idempotency key."""
    return canonical_request(**{**fields, "idempotency_key": ""})


def card_plaintext(pan: str, expiry: str, cvv2: str = "") -> bytes:
    """The bytes a terminal encrypts into ``EncryptedCard.ciphertext``."""
    return terminal_pb2.CardData(pan=pan, expiry=expiry, cvv2=cvv2).SerializeToString()


def parse_card_data(plaintext: bytes) -> terminal_pb2.CardData:
    """Decrypted card data as a message; raises ``google.protobuf.message.DecodeError``."""
    return terminal_pb2.CardData.FromString(plaintext)
