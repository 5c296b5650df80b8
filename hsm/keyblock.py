"""Key blocks: a key moves between two parties' HSMs only wrapped, with a header bound to it.

In the manner of ANSI X9.143 / TR-31 key block version D (AES), adapted to what PKCS#11 on
SoftHSM can do without the key ever being in clear outside a token. The block is printable
ASCII::

    header (16 chars) | optional blocks | hex(wrapped key) | hex(MAC, 16 bytes)

Header, as TR-31: version ID (1), block length (4 digits), key usage (2: ``P0`` PIN encryption,
``B0`` BDK, ``C0`` card verification, ``E0`` EMV application cryptogram master key, ``V0`` PIN
verification, ``K0`` key encryption, ``D0`` data encryption, ``M7`` HMAC), algorithm (1: ``A``
AES, ``T`` TDES, ``H`` HMAC), mode of use (1: ``B`` encrypt+decrypt, ``E`` encrypt only, ``X``
derive only, ``C`` generate+verify, ``G`` generate only), key version (2 digits), exportability
(1: always ``N``, the receiver stores it non-extractable), number of optional blocks (2 digits),
reserved ``00``. Optional blocks as TR-31 (ID 2 chars, length 2 hex digits counting ID and
length, data): ``KC`` key check value (``01`` + KCV for AES CMAC KCVs, ``00`` for the legacy
TDES ECB KCV, ``10`` for our HMAC KCV, see ``hsm.keys``), and ``10`` (a numeric, proprietary
ID) the sender's ``<owner>/<purpose>`` for the audit trail.

Keys, as TR-31 version D: the two parties share a key block protection key (KBPK, AES-256, here
``<party>/kek.<peer>/v1``, DERIVE only; agreed by ``hsm.exchange`` under RSA-OAEP in the manner
of TR-34). From it the HSM derives, per block, a key block encryption key (KBEK) and a key block
authentication key (KBAK), both AES-256 session keys, with the TR-31 derivation data (counter,
usage ``0000`` encryption / ``0001`` MAC, separator, algorithm ``0004`` AES-256, length
``0100``).

Where this differs from TR-31 (all forced by PKCS#11/SoftHSM keeping every key inside the token):

* Version ID ``1``, not ``D``, so no TR-31 parser mistakes a block of ours for a standard one.
* Derivation: TR-31 runs AES-CMAC over the derivation data (SP 800-108 counter mode); PKCS#11
  has no CMAC KDF, so each 16-byte half of the KBEK/KBAK is AES-ECB of the derivation data padded
  ``80 00..`` (C_DeriveKey with CKM_AES_ECB_ENCRYPT_DATA, the X9.24-3 derivation style).
* Wrapping: TR-31 encrypts (length || key || padding) with AES-CBC using the MAC as IV, and its
  MAC covers the clear key. SoftHSM's C_WrapKey offers CKM_AES_KEY_WRAP / _PAD, RSA PKCS#1 and
  RSA-OAEP (SHA-1) only (tested: CKM_AES_CBC_PAD and CKM_AES_ECB are refused as wrapping
  mechanisms), and a clear key cannot be MACed without leaving the token; so the key is wrapped
  with CKM_AES_KEY_WRAP_PAD (RFC 5649, itself an authenticated wrap), and the MAC is AES-CMAC
  under the KBAK over header || hex(wrapped key): encrypt-then-MAC, which binds the header to
  the wrapped key as TR-31's MAC does.

The receiver checks the MAC (constant time, in the HSM) before reading anything else, then that
the header says exactly the usage, algorithm, mode of use and exportability it expects for the
label it will store the key under; a block for another usage, or with any header byte changed,
is refused (:class:`KeyBlockError`) and nothing is stored.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from hsm.errors import IntegrityError
from hsm.keys import DERIVE, ENC, SIGN, VERIFY, Purpose
from hsm.templates import secret_key_template

VERSION_ID = "1"
HEADER_LEN = 16
MAC_LEN = 16
KCV_BLOCK = "KC"
SENDER_BLOCK = "10"

_USAGE = {"zpk": "P0", "bdk": "B0", "cvk": "C0", "cvk-a": "C0", "imk-ac": "E0", "pvk": "V0"}
_USAGE_DEFAULT = {KeyType.AES: "D0", KeyType.GENERIC_SECRET: "M7", KeyType.DES2: "D0"}
_ALGORITHM = {KeyType.AES: "A", KeyType.DES2: "T", KeyType.DES3: "T", KeyType.GENERIC_SECRET: "H"}
_KCV_METHOD = {"A": "01", "T": "00", "H": "10"}


class KeyBlockError(IntegrityError):
    """A key block that fails its MAC, is malformed, or is not the key the receiver expects."""


@dataclass(frozen=True, slots=True)
class Header:
    usage: str
    algorithm: str
    mode: str
    version: int
    exportability: str = "N"

    def text(self, optional: str, n_optional: int, total_len: int) -> str:
        return (
            f"{VERSION_ID}{total_len:04d}{self.usage}{self.algorithm}{self.mode}"
            f"{self.version:02d}{self.exportability}{n_optional:02d}00{optional}"
        )


def mode_of_use(capabilities: frozenset[Attribute]) -> str:
    """TR-31 mode of use for a key with these PKCS#11 capabilities."""
    if capabilities == {DERIVE}:
        return "X"
    if capabilities == {ENC}:
        return "E"
    if capabilities == {ENC, Attribute.DECRYPT}:
        return "B"
    if capabilities == {SIGN, VERIFY}:
        return "C"
    if capabilities == {SIGN}:
        return "G"
    raise KeyBlockError(f"no mode of use for capabilities {sorted(a.name for a in capabilities)}")


def header_for(purpose_name: str, purpose: Purpose, version: int) -> Header:
    """The header a key of ``purpose`` must carry (sender builds it, receiver expects it)."""
    base = purpose_name.split(".", 1)[0]
    usage = _USAGE.get(base) or _USAGE_DEFAULT[purpose.key_type]
    return Header(usage, _ALGORITHM[purpose.key_type], mode_of_use(purpose.capabilities), version)


def _optional(blocks: list[tuple[str, str]]) -> str:
    out = []
    for ident, data in blocks:
        length = 4 + len(data)
        if length > 0xFF or not data.isascii():
            raise KeyBlockError(f"optional block {ident} too long or not ASCII")
        out.append(f"{ident}{length:02X}{data}")
    return "".join(out)


def _derivation_data(usage: int, half: int) -> bytes:
    # TR-31 version D derivation data for AES-256, padded as CMAC pads a short final block.
    data = bytes([half]) + usage.to_bytes(2, "big") + b"\x00" + b"\x00\x04" + b"\x01\x00"
    return data + b"\x80" + bytes(7)


def _derive(kbpk: Any, usage: int, capability: Attribute) -> Any:
    return kbpk.derive_key(
        KeyType.AES,
        256,
        mechanism=Mechanism.AES_ECB_ENCRYPT_DATA,
        mechanism_param=_derivation_data(usage, 1) + _derivation_data(usage, 2),
        template=secret_key_template(token=False, capabilities={capability}),
    )


def _mac(kbpk: Any, data: bytes) -> bytes:
    kbak = _derive(kbpk, 1, SIGN)
    try:
        mac: bytes = kbak.sign(data, mechanism=Mechanism.AES_CMAC)
        return mac
    finally:
        kbak.destroy()


def seal(
    kbpk: Any, key: Any, header: Header, *, kcv: bytes, sender: str
) -> str:  # key: SENSITIVE, EXTRACTABLE session key
    """The key block of ``key`` under ``kbpk`` (both objects of one session, on the HSM)."""
    kbek = _derive(kbpk, 0, Attribute.WRAP)
    try:
        wrapped: bytes = kbek.wrap_key(key, mechanism=Mechanism.AES_KEY_WRAP_PAD)
    finally:
        kbek.destroy()
    kc = _KCV_METHOD[header.algorithm] + kcv.hex().upper()
    optional = _optional([(KCV_BLOCK, kc), (SENDER_BLOCK, sender)])
    total = HEADER_LEN + len(optional) + 2 * len(wrapped) + 2 * MAC_LEN
    body = header.text(optional, 2, total) + wrapped.hex().upper()
    return body + _mac(kbpk, body.encode("ascii")).hex().upper()


@dataclass(frozen=True, slots=True)
class Opened:
    """What the receiver learnt from a verified block: the header, KCV and sender, and the
    wrapped key still wrapped."""

    header: Header
    kcv: bytes
    sender: str
    wrapped: bytes


def verify(kbpk: Any, block: str) -> Opened:
    """Check the block's MAC under ``kbpk`` (in the HSM), then parse it; refuse anything off."""
    if not block.isascii() or len(block) < HEADER_LEN + 2 * MAC_LEN or block[0] != VERSION_ID:
        raise KeyBlockError("not a key block of this format")
    body, mac_hex = block[: -2 * MAC_LEN], block[-2 * MAC_LEN :]
    try:
        given = bytes.fromhex(mac_hex)
    except ValueError:
        raise KeyBlockError("key block MAC is not hex") from None
    if not hmac.compare_digest(_mac(kbpk, body.encode("ascii")), given):
        raise KeyBlockError("key block MAC does not verify (tampered, or another KBPK)")
    try:
        return _parse(body)
    except (ValueError, IndexError):
        raise KeyBlockError("key block malformed") from None


def _parse(body: str) -> Opened:
    if int(body[1:5]) != len(body) + 2 * MAC_LEN:
        raise KeyBlockError("key block length field is wrong")
    header = Header(body[5:7], body[7], body[8], int(body[9:11]), body[11])
    n_optional = int(body[12:14])
    pos, blocks = HEADER_LEN, {}
    for _ in range(n_optional):
        ident, length = body[pos : pos + 2], int(body[pos + 2 : pos + 4], 16)
        blocks[ident] = body[pos + 4 : pos + length]
        pos += length
    kc, sender = blocks.get(KCV_BLOCK, ""), blocks.get(SENDER_BLOCK, "")
    if len(kc) != 8 or kc[:2] != _KCV_METHOD.get(header.algorithm) or not sender:
        raise KeyBlockError("key block lacks its KCV or sender block")
    return Opened(header, bytes.fromhex(kc[2:]), sender, bytes.fromhex(body[pos:]))


def unwrap(
    kbpk: Any, opened: Opened, expected: Header, key_type: KeyType, capabilities: set[Attribute]
) -> Any:
    """The verified block's key as a session object with ``capabilities`` (sensitive,
    non-extractable), after checking the header is exactly ``expected``."""
    if opened.header != expected:
        got, want = opened.header, expected
        raise KeyBlockError(
            f"key block header {got.usage}{got.algorithm}{got.mode}{got.version:02d}"
            f"{got.exportability} is not the expected {want.usage}{want.algorithm}{want.mode}"
            f"{want.version:02d}{want.exportability}"
        )
    kbek = _derive(kbpk, 0, Attribute.UNWRAP)
    try:
        return kbek.unwrap_key(
            ObjectClass.SECRET_KEY,
            key_type,
            opened.wrapped,
            mechanism=Mechanism.AES_KEY_WRAP_PAD,
            store=False,
            template=secret_key_template(token=False, capabilities=capabilities),
        )
    finally:
        kbek.destroy()
