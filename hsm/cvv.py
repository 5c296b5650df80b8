"""Visa CVV / Mastercard CVC with an issuer CVK pair, in the HSM; also CVV2 and iCVV.

The algorithm (Visa; CVC is the same): the digits PAN || expiry (YYMM) || service code, padded
right with ``0`` to 32 nibbles, form blocks B1, B2. Encrypt B1 with DES under K_A, XOR B2,
encrypt with 3DES (K_A, K_B), then decimalise: the decimal nibbles left to right, then the
nibbles A..F minus 10, and keep the first three. CVV2 (printed) uses service code ``000``, iCVV
(chip track 2 equivalent) ``999``.

That computation is ISO/IEC 9797-1 MAC algorithm 3 over two blocks, so it runs through
:func:`hsm.emv.mac_algorithm_3`: one DES3-ECB-equivalent single-DES step under the K_A || K_A
object (SoftHSM has no usable single DES), one DES3 block under K_A || K_B. The CVK is therefore
two token objects, ``<issuer>/cvk/v<n>`` (K_A || K_B) and ``<issuer>/cvk-a/v<n>`` (K_A || K_A), both
ENCRYPT only and created together by :func:`create_cvk` from one in-HSM derivation, so no CVK
half ever exists outside the token.

Limitation of a generic PKCS#11 token: E_A(B1), the XOR and the final block sit in host memory
for an instant, and the XOR/decimalisation are done here on that data. E_A(B1) together with the
(known) PAN is a single-DES known-plaintext pair for K_A, and the final block decimalises to the
CVV itself. A payment HSM runs the whole algorithm in one command (e.g. "verify CVV") and returns
only yes/no; here the comparison is constant time and the buffers are zeroed after use.
"""

from __future__ import annotations

import hmac
from typing import Any

from pkcs11 import Attribute, KeyType

from hsm import labels
from hsm.emv import DesKeyPair, EmvError, des3_derive_pair, mac_algorithm_3
from hsm.pinblock import zeroize
from hsm.pool import get_key
from hsm.templates import secret_key_template

SERVICE_CODE_CVV2 = "000"
SERVICE_CODE_ICVV = "999"


class CvvError(EmvError):
    """Malformed CVV input. Messages never carry PAN, expiry or CVV."""


def _digits(value: str, lo: int, hi: int, what: str) -> str:
    if not (isinstance(value, str) and lo <= len(value) <= hi and value.isascii()):
        raise CvvError(f"{what} must be {lo} to {hi} decimal digits")
    if not value.isdigit():
        raise CvvError(f"{what} must be {lo} to {hi} decimal digits")
    return value


def cvv_input(pan: str, expiry: str, service_code: str) -> bytearray:
    """The two 8-byte blocks B1 || B2: PAN || expiry || service code, zero-filled to 32."""
    digits = (
        _digits(pan, 12, 19, "PAN")
        + _digits(expiry, 4, 4, "expiry (YYMM)")
        + _digits(service_code, 3, 3, "service code")
    )
    return bytearray.fromhex(digits.ljust(32, "0"))


def _decimalise(block: bytes, n: int) -> bytearray:
    """Visa decimalisation: decimal nibbles, then A..F minus 10; first ``n`` as ASCII digits."""
    nibbles = [x for b in block for x in (b >> 4, b & 0x0F)]
    ordered = [x for x in nibbles if x < 10] + [x - 10 for x in nibbles if x >= 10]
    out = bytearray(48 + x for x in ordered[:n])
    ordered[:] = [0] * len(ordered)
    nibbles[:] = [0] * len(nibbles)
    return out


def _compute(cvk: DesKeyPair, pan: str, expiry: str, service_code: str, n: int) -> bytearray:
    data = cvv_input(pan, expiry, service_code)
    try:
        block = mac_algorithm_3(cvk, bytes(data))
    finally:
        zeroize(data)
    try:
        return _decimalise(block, n)
    finally:
        zeroize(block)


def generate_cvv(
    session: Any, cvk: DesKeyPair, pan: str, expiry: str, service_code: str, digits: int = 3
) -> str:
    """Card production / simulator: the CVV (or CVV2 with ``000``, iCVV with ``999``)."""
    if not 3 <= digits <= 5:
        raise CvvError("CVV length must be 3 to 5 digits")
    out = _compute(cvk, pan, expiry, service_code, digits)
    try:
        return out.decode()
    finally:
        zeroize(out)


def verify_cvv(
    session: Any, cvk: DesKeyPair, pan: str, expiry: str, service_code: str, presented: str
) -> bool:
    """Issuer: does ``presented`` match? Constant-time; a malformed value is just a mismatch."""
    if not (isinstance(presented, str) and 3 <= len(presented) <= 5 and presented.isascii()):
        return False
    out = _compute(cvk, pan, expiry, service_code, len(presented))
    try:
        return hmac.compare_digest(bytes(out), presented.encode())
    finally:
        zeroize(out)


def cvk_labels(owner: str, version: int = 1) -> tuple[str, str]:
    """Labels of an issuer's CVK objects: (K_A || K_B, K_A || K_A)."""
    return labels.label(owner, labels.CVK, version), labels.label(owner, labels.CVK_A, version)


def load_cvk(session: Any, owner: str, version: int = 1) -> DesKeyPair:
    """The issuer's CVK pair by label (cached per session by :func:`hsm.pool.get_key`)."""
    pair_label, left_label = cvk_labels(owner, version)
    return DesKeyPair(get_key(session, pair_label), get_key(session, left_label))


def create_cvk(
    session: Any, owner: str, version: int = 1, *, for_export: bool = False
) -> DesKeyPair:
    """Ceremony: generate an issuer CVK pair as two token objects, inside the HSM.

    A temporary DES2 derivation key T (session object, DERIVE only) is generated; K_A || K_B =
    3DES_T(r1) || 3DES_T(r2) and K_A || K_A = 3DES_T(r1) || 3DES_T(r1) for 16 random bytes r1 || r2
    from C_GenerateRandom; T is destroyed. Both objects: token, sensitive, non-extractable,
    ENCRYPT only. ``for_export``: both are unlabelled *session* objects that may be wrapped once
    (``hsm.exchange`` seals them into key blocks, then keeps locked-down token copies).
    """
    pair_label, left_label = cvk_labels(owner, version)
    tmp = session.generate_key(
        KeyType.DES2,
        capabilities=0,
        template=secret_key_template(token=False, capabilities={Attribute.DERIVE}),
    )
    try:
        r = session.generate_random(128)
        try:
            return des3_derive_pair(
                tmp,
                r[:8],
                r[8:],
                capabilities={Attribute.ENCRYPT},
                labels=None if for_export else (pair_label, left_label),
                token=not for_export,
                extractable=for_export,
            )
        finally:
            zeroize(r)
    finally:
        tmp.destroy()
