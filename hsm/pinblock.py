"""ISO 9564-1:2017 format 4 (AES) PIN blocks: translate at the switch, verify at the issuer.

Format 4 (ISO 9564-1:2017, 9.4), all fields 16 bytes:

- plain PIN field: control nibble ``4``, length nibble N (4..12), N PIN digits, fill nibbles
  ``A`` up to nibble 15, then 16 random fill nibbles (0..F);
- plain PAN field: nibble M = len(PAN) - 12 (0 when shorter), the PAN left-padded with ``0`` to
  12 digits, then ``0`` nibbles to 32;
- encipher: A = E(PIN field); B = A xor PAN field; block = E(B). Decipher reverses it.

Why the clear PIN field passes through host memory. PKCS#11 has no PIN-translate operation and
SoftHSM offers no vendor one, so :func:`translate` deciphers under the terminal's DUKPT PIN key and
re-enciphers under the zone PIN key with two AES-ECB calls each way. The clear field lives only
inside :func:`translate` / :func:`_open_block`, in ``bytearray`` buffers that are zeroed in a
``finally``; the ``bytes`` python-pkcs11 returns are wiped in place (:func:`zeroize`, CPython).
python-pkcs11 also copies every output through an internal buffer it frees without zeroing; that
copy is out of our reach. A real HSM translates inside its boundary; this is the documented price
of a generic PKCS#11 token. Nothing here logs, and errors never carry PIN, PAN or block.

PIN verification (issuer): an *encrypted PIN store*. The issuer keeps, per card, a PIN
verification value PVV = AES-CMAC under its PIN verification key (``<issuer>/pvk/v<n>``, AES-256,
SIGN only) over ``domain || PAN field || first 8 bytes of the plain PIN field`` (control, length,
digits, ``A`` fill: the random half is excluded so the value is deterministic). Why not Visa PVV or
IBM 3624 offsets: both need single/triple DES, only use 4 PIN digits (PVV) or leak through a
decimalisation table, and their 4-digit values are short; a 128-bit keyed MAC binds all 4..12
digits to the PAN, is useless without the HSM key (no offline brute force of the PIN space), and
is compared in constant time. Store the PVV with the PVK version that made it.
"""

from __future__ import annotations

import ctypes
import hmac
import platform
from typing import Any

from pkcs11 import Mechanism

from hsm.errors import HsmError

BLOCK_LEN = 16
PIN_MIN, PIN_MAX = 4, 12
PVV_LEN = 16
# 16 bytes of domain separation, so a PVV can never collide with another CMAC use of a key.
_PVV_DOMAIN = b"payswitch/pvv/1\x00"
_FILL = 0xA


class PinBlockError(HsmError, ValueError):
    """A PIN block or PIN that is not a valid ISO 9564-1 format 4 input.

    Messages name the failed rule only, never the block, PIN or PAN. The issuer answers 55.
    """


_BYTES_DATA_OFFSET = bytes.__basicsize__ - 1  # offset of ob_sval in a CPython bytes object
_CPYTHON = platform.python_implementation() == "CPython"


def zeroize(*buffers: bytearray | bytes) -> None:
    """Overwrite buffers with zeros: bytearrays always, immutable bytes in place on CPython.

    Best effort: bytes of length 0 or 1 are interned singletons and are left alone; only call
    this on objects nobody else references (fresh results of PKCS#11 calls).
    """
    for buf in buffers:
        if isinstance(buf, bytearray):
            buf[:] = bytes(len(buf))
        elif isinstance(buf, bytes) and _CPYTHON and len(buf) > 1:
            ctypes.memset(id(buf) + _BYTES_DATA_OFFSET, 0, len(buf))


def pan_field(pan: str) -> bytearray:
    """Plain PAN field of format 4 (ISO 9564-1:2017): M, PAN padded to 12 digits, zero fill."""
    if not (isinstance(pan, str) and 1 <= len(pan) <= 19 and pan.isascii() and pan.isdigit()):
        raise PinBlockError("PAN must be 1 to 19 decimal digits")
    digits = pan.rjust(12, "0")
    nibbles = str(len(digits) - 12) + digits
    return bytearray.fromhex(nibbles.ljust(2 * BLOCK_LEN, "0"))


def pin_field(pin: str, fill: bytes) -> bytearray:
    """Plain PIN field; ``fill`` is the 8-byte random half."""
    if not (isinstance(pin, str) and PIN_MIN <= len(pin) <= PIN_MAX and pin.isascii()):
        raise PinBlockError("PIN must be 4 to 12 decimal digits")
    if not pin.isdigit():
        raise PinBlockError("PIN must be 4 to 12 decimal digits")
    if len(fill) != 8:
        raise PinBlockError("random fill must be 8 bytes")
    field = bytearray(BLOCK_LEN)
    nibbles = [4, len(pin), *(ord(c) - 48 for c in pin)]
    nibbles += [_FILL] * (16 - len(nibbles))
    for i in range(8):
        field[i] = (nibbles[2 * i] << 4) | nibbles[2 * i + 1]
    field[8:] = fill
    return field


def check_pin_field(field: bytearray | bytes) -> int:
    """Validate a plain format 4 PIN field; return the PIN length.

    Rules: control nibble 4, length 4..12, decimal PIN digits, fill nibbles ``A`` up to nibble
    15. The random half (nibbles 16..31) may hold any value.
    """
    if len(field) != BLOCK_LEN:
        raise PinBlockError("PIN field must be 16 bytes")
    if field[0] >> 4 != 4:
        raise PinBlockError("PIN block is not ISO 9564-1 format 4 (control field)")
    n = field[0] & 0x0F
    if not PIN_MIN <= n <= PIN_MAX:
        raise PinBlockError("PIN length out of range 4..12")
    bad_digit = False
    bad_fill = False
    for pos in range(2, 16):
        nib = (field[pos // 2] >> (4 * (1 - pos % 2))) & 0x0F
        if pos < 2 + n:
            bad_digit |= nib > 9
        else:
            bad_fill |= nib != _FILL
    if bad_digit:
        raise PinBlockError("PIN field holds a non-decimal PIN digit")
    if bad_fill:
        raise PinBlockError("PIN field fill is not 'A'")
    return n


def check_block(pin_block: bytes) -> bytes:
    if not isinstance(pin_block, bytes | bytearray) or len(pin_block) != BLOCK_LEN:
        raise PinBlockError("format 4 PIN block must be 16 bytes")
    return bytes(pin_block)


def xor_into(dst: bytearray, src: bytes | bytearray) -> None:
    for i in range(len(dst)):
        dst[i] ^= src[i]


def _open_block(key: Any, pin_block: bytes, pfield: bytearray) -> bytearray:
    """Decipher a format 4 block under ``key`` (AES handle) into a checked clear PIN field.

    The caller owns the returned buffer and must :func:`zeroize` it.
    """
    b = key.decrypt(check_block(pin_block), mechanism=Mechanism.AES_ECB)  # B = A xor PAN field
    a = bytearray(b)
    zeroize(b)
    field = bytearray(BLOCK_LEN)
    try:
        xor_into(a, pfield)  # A = E(PIN field)
        clear = key._decrypt(a, mechanism=Mechanism.AES_ECB)
        field[:] = clear
        zeroize(clear)
        check_pin_field(field)
    except BaseException:
        zeroize(field)
        raise
    finally:
        zeroize(a)
    return field


def _seal_field(key: Any, field: bytearray, pfield: bytearray) -> bytes:
    """Encipher a clear PIN field under ``key``: E(E(field) xor PAN field)."""
    a = key._encrypt(field, mechanism=Mechanism.AES_ECB)
    b = bytearray(a)
    try:
        xor_into(b, pfield)
        sealed: bytes = key._encrypt(b, mechanism=Mechanism.AES_ECB)
        return sealed
    finally:
        zeroize(b)


def translate(session: Any, pek: Any, zpk: Any, pin_block: bytes, pan: str) -> bytes:
    """Switch side: format 4 block under the terminal's DUKPT PIN key -> same PIN under a ZPK.

    ``pek`` is the DUKPT PIN encryption session key (AES handle with DECRYPT, derived by
    ``hsm.dukpt``); ``zpk`` the zone PIN key shared with the next hop (AES-128, ENCRYPT). The
    random fill is replaced with 8 fresh bytes from the HSM (C_GenerateRandom), so the outgoing
    block is unlinkable to the incoming one. Raises :class:`PinBlockError` on a malformed block.
    """
    pfield = pan_field(pan)
    field = bytearray()
    try:
        field = _open_block(pek, pin_block, pfield)
        fresh = session.generate_random(64)
        field[8:] = fresh
        zeroize(fresh)
        return _seal_field(zpk, field, pfield)
    finally:
        zeroize(field, pfield)


def _pvv_input(field: bytearray, pfield: bytearray) -> bytearray:
    data = bytearray(_PVV_DOMAIN)
    data += pfield
    data += memoryview(field)[:8]  # no intermediate copy of the clear PIN digits
    data += bytes(8)
    return data


def _pvv(pvk: Any, field: bytearray, pfield: bytearray) -> bytes:
    data = _pvv_input(field, pfield)
    try:
        pvv: bytes = pvk._sign(data, mechanism=Mechanism.AES_CMAC)
        return pvv
    finally:
        zeroize(data)


def pvv_from_pin_block(session: Any, zpk: Any, pvk: Any, pin_block: bytes, pan: str) -> bytes:
    """Issuer enrolment: the PIN verification value of the PIN inside a format 4 block (ZPK)."""
    pfield = pan_field(pan)
    field = _open_block(zpk, pin_block, pfield)
    try:
        return _pvv(pvk, field, pfield)
    finally:
        zeroize(field, pfield)


def pvv_from_pin(session: Any, pvk: Any, pan: str, pin: str) -> bytes:
    """Issuer PIN issuance (simulated cardholders): the PVV of a PIN given in clear.

    Only for issuance; the clear PIN must come from the issuer's own PIN generation or mailer
    data, never from a transaction. The caller stores the result, never the PIN.
    """
    pfield = pan_field(pan)
    field = pin_field(pin, bytes(8))
    try:
        return _pvv(pvk, field, pfield)
    finally:
        zeroize(field, pfield)


def verify_pin(session: Any, zpk: Any, pvk: Any, pin_block: bytes, pan: str, pvv: bytes) -> bool:
    """Issuer side: does the format 4 block (under ``zpk``) hold the PIN behind ``pvv``?

    Constant-time comparison of the 16-byte CMAC. Raises :class:`PinBlockError` when the block
    does not decipher to a valid format 4 field (wrong key or tampering): answer 55 as well.
    """
    pfield = pan_field(pan)
    field = _open_block(zpk, pin_block, pfield)
    try:
        mac = _pvv(pvk, field, pfield)
    finally:
        zeroize(field, pfield)
    ok = isinstance(pvv, bytes | bytearray) and hmac.compare_digest(mac, bytes(pvv))
    return ok
