"""EMV application cryptograms in the HSM: ARQC verification and ARPC (method 1) at the issuer.

Key chain (EMV 4.4 Book 2, Annex A1), every step a PKCS#11 C_DeriveKey with
CKM_DES3_ECB_ENCRYPT_DATA, every derived key a *session* object (sensitive, non-extractable,
least capability) destroyed after the request:

- ICC master key, option A (A1.4.1): Y = rightmost 16 digits of PAN || PSN (zero-padded left);
  MK = 3DES_IMK(Y) || 3DES_IMK(Y xor FF..FF). The issuer master key ``<issuer>/imk-ac/v<n>`` is a
  DES2 token key with DERIVE only; MK gets DERIVE only. SoftHSM sets odd parity on derived DES
  keys, as the spec asks.
- Session key, common core (A1.3.1): R = ATC || 00 * 6; SK = 3DES_MK(R with byte 2 = F0) ||
  3DES_MK(R with byte 2 = 0F).
- ARQC = ISO/IEC 9797-1 MAC algorithm 3 with padding method 2 over the CDOL1 data (A1.2.1).
- ARPC method 1 (Book 2, 8.2.1): 3DES_SK(ARQC xor (ARC || 00 * 6)).

MAC algorithm 3 on SoftHSM (see :func:`mac_algorithm_3`). SoftHSM 2.6.1 has no CKM_DES3_MAC
and refuses CKM_DES_ECB/CBC (OpenSSL 3 dropped single DES; MechanismInvalid), but DES3 with equal
halves *is* single DES and SoftHSM accepts such keys. So each DES key pair K_A || K_B is held as two
objects: ``pair`` (K_A || K_B) and ``left`` (K_A || K_A), both derived inside the HSM from the same
parent with the same data halves (:func:`des3_derive`). The MAC is then two calls: a CBC-MAC with
zero IV under ``left`` over all blocks but the last (single-DES chaining), and one DES3-CBC block
under ``pair`` with that chaining value as IV: 3DES_AB(H[n-1] xor x[n]) = E_A(D_B(E_A(...))),
which is exactly MAC algorithm 3's output transformation.

Limitation, documented not hidden: the single-DES chaining values H[1..n-1] and the final MAC
cross host memory. With the input data known, each H[i] is a single-DES known-plaintext pair
under K_A: a 2^56 search for someone who can read this process's memory. Here K_A is half of a
per-ATC session key, so that search yields one transaction's key, never the MK or the IMK (which
stay in the token); a payment HSM computes the whole MAC inside its boundary and answers yes/no.

The card side (simulator) personalises an ICC master key as a token object derived from the IMK
(:func:`personalise_card`) and produces real ARQCs with :func:`card_generate_arqc`, through the same
derivation and MAC code; tests cross-check against published vectors and `cryptography`.
"""

from __future__ import annotations

import ctypes
import hmac
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism

from hsm.errors import HsmError
from hsm.templates import secret_key_template

DES_BLOCK = 8
_ZERO_BLOCK = bytes(DES_BLOCK)


class EmvError(HsmError, ValueError):
    """Malformed EMV input (lengths, digits). Messages never carry PAN, keys or cryptograms."""


@dataclass(frozen=True, slots=True)
class DesKeyPair:
    """A double-length DES key K_A || K_B as two HSM objects.

    ``pair`` holds K_A || K_B (3DES); ``left`` holds K_A || K_A, i.e. single DES under K_A, which
    SoftHSM can only do this way. Both must come from one derivation (:func:`des3_derive`) or one
    import, or the MAC is garbage.
    """

    pair: Any
    left: Any

    def destroy(self) -> None:
        _destroy(self.pair, self.left)


def _destroy(*keys: Any) -> None:
    for key in keys:
        if key is not None:
            key.destroy()


# --- derivation ---------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _derive_template_cached(
    capabilities: frozenset[Attribute], label: str | None, token: bool, extractable: bool = False
) -> dict[Attribute, Any]:
    extra = {Attribute.EXTRACTABLE: True} if extractable else None
    tpl = secret_key_template(label=label, token=token, capabilities=capabilities, extra=extra)
    # python-pkcs11 always adds CKA_VALUE_LEN; SoftHSM rejects it for DES keys
    # (AttributeReadOnly). The DEFAULT sentinel removes it before packing.
    tpl[Attribute.VALUE_LEN] = pkcs11.DEFAULT
    return tpl


def _derive_template(
    capabilities: set[Attribute], label: str | None, token: bool, extractable: bool = False
) -> dict[Attribute, Any]:
    """Validated once per shape (validation dry-runs every packer: ~50 us a call)."""
    return dict(_derive_template_cached(frozenset(capabilities), label, token, extractable))


def des3_derive(
    parent: Any,
    data: bytes | bytearray,
    *,
    capabilities: set[Attribute],
    label: str | None = None,
    token: bool = False,
    extractable: bool = False,
) -> Any:
    """DES2 key with value 3DES-ECB_parent(data) (16 bytes of data), derived inside the HSM.
    ``extractable``: a session key that may leave once, wrapped (a key block at its birth).

    CKM_DES3_ECB_ENCRYPT_DATA takes a CK_KEY_DERIVATION_STRING_DATA {pData, ulLen} that
    python-pkcs11 cannot build, so it is packed here; the data buffer is kept alive for the call
    and zeroed after it (it may hold PAN digits).
    """
    if len(data) != 2 * DES_BLOCK:
        raise EmvError("DES2 derivation data must be 16 bytes")
    tpl = _derive_template(capabilities, label, token, extractable)
    buf = ctypes.create_string_buffer(bytes(data), len(data))
    try:
        param = struct.pack("@PL", ctypes.addressof(buf), len(data))
        return parent.derive_key(
            KeyType.DES2,
            128,
            mechanism=Mechanism.DES3_ECB_ENCRYPT_DATA,
            mechanism_param=param,
            capabilities=0,
            template=tpl,
        )
    finally:
        ctypes.memset(buf, 0, len(data))


def des3_derive_pair(
    parent: Any,
    left_data: bytes,
    right_data: bytes,
    *,
    capabilities: set[Attribute],
    labels: tuple[str, str] | None = None,
    token: bool = False,
    extractable: bool = False,
) -> DesKeyPair:
    """Derive K_A || K_B (K_A = 3DES_parent(left_data), K_B = 3DES_parent(right_data)) and the
    matching K_A || K_A object for single-DES steps."""
    pair = des3_derive(
        parent,
        left_data + right_data,
        capabilities=capabilities,
        label=labels[0] if labels else None,
        token=token,
        extractable=extractable,
    )
    try:
        left = des3_derive(
            parent,
            left_data + left_data,
            capabilities=capabilities,
            label=labels[1] if labels else None,
            token=token,
            extractable=extractable,
        )
    except BaseException:
        _destroy(pair)
        raise
    return DesKeyPair(pair, left)


# --- MAC algorithm 3 --------------------------------------------------------------------------


def pad_method_1(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 1: zeros to a block multiple (one block if empty)."""
    if data and len(data) % DES_BLOCK == 0:
        return data
    return data + bytes(DES_BLOCK - len(data) % DES_BLOCK)


def pad_method_2(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 0x80, then zeros to a block multiple."""
    data = data + b"\x80"
    return data + bytes(-len(data) % DES_BLOCK)


def mac_algorithm_3(keys: DesKeyPair, padded: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 (retail MAC), 8 bytes, over already padded data.

    H[i] = E_A(H[i-1] xor x[i]) for all blocks but the last, by DES3-CBC with zero IV under
    ``keys.left`` (K_A || K_A) and taking the last output block; then the output is
    E_A(D_B(E_A(H[n-1] xor x[n]))) = one DES3-CBC block under ``keys.pair`` with IV H[n-1].
    """
    if not padded or len(padded) % DES_BLOCK:
        raise EmvError("MAC input must be a non-empty multiple of 8 bytes")
    chain = _ZERO_BLOCK
    if len(padded) > DES_BLOCK:
        chain = keys.left.encrypt(
            padded[:-DES_BLOCK], mechanism=Mechanism.DES3_CBC, mechanism_param=_ZERO_BLOCK
        )[-DES_BLOCK:]
    mac: bytes = keys.pair.encrypt(
        padded[-DES_BLOCK:], mechanism=Mechanism.DES3_CBC, mechanism_param=chain
    )
    return mac


# --- EMV key derivation -------------------------------------------------------------------------


def _digits(value: str, lo: int, hi: int, what: str) -> str:
    if not (isinstance(value, str) and lo <= len(value) <= hi and value.isascii()):
        raise EmvError(f"{what} must be {lo} to {hi} decimal digits")
    if not value.isdigit():
        raise EmvError(f"{what} must be {lo} to {hi} decimal digits")
    return value


def _check_len(value: bytes, n: int, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != n:
        raise EmvError(f"{what} must be {n} bytes")
    return bytes(value)


def _option_a_data(pan: str, psn: str) -> bytearray:
    """Y || (Y xor FF..FF), Y = rightmost 16 digits of PAN || PSN, zero-padded on the left."""
    _digits(pan, 12, 19, "PAN")
    _digits(psn, 2, 2, "PAN sequence number")
    y = bytearray.fromhex((pan + psn)[-16:].rjust(16, "0"))
    return y + bytearray(b ^ 0xFF for b in y)


def derive_icc_master_key(
    imk: Any,
    pan: str,
    psn: str = "00",
    *,
    capabilities: set[Attribute] | None = None,
    label: str | None = None,
    token: bool = False,
) -> Any:
    """ICC master key (EMV Book 2 A1.4.1, option A) from the issuer master key ``imk``.

    By default a session object with DERIVE only (its one use is session-key derivation).
    """
    data = _option_a_data(pan, psn)
    try:
        return des3_derive(
            imk,
            data,
            capabilities=capabilities or {Attribute.DERIVE},
            label=label,
            token=token,
        )
    finally:
        data[:] = bytes(len(data))


def derive_session_keys(icc_mk: Any, atc: bytes) -> DesKeyPair:
    """AC session key, EMV common core (Book 2 A1.3.1) with R = ATC || 00 * 6. ENCRYPT only."""
    atc = _check_len(atc, 2, "ATC")
    left = atc + b"\xf0" + bytes(5)
    right = atc + b"\x0f" + bytes(5)
    return des3_derive_pair(icc_mk, left, right, capabilities={Attribute.ENCRYPT})


@contextmanager
def _issuer_session_keys(imk: Any, pan: str, psn: str, atc: bytes) -> Iterator[DesKeyPair]:
    mk = derive_icc_master_key(imk, pan, psn)
    try:
        sk = derive_session_keys(mk, atc)
    finally:
        mk.destroy()
    try:
        yield sk
    finally:
        sk.destroy()


# --- cryptograms --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArqcData:
    """The CDOL1 data the ARQC covers, in the order of EMV Book 2's recommended minimum set
    (Table 28) followed by the issuer application data (tag 9F10), as the common core uses."""

    amount_authorised: bytes  # 9F02, n12 BCD, 6 bytes
    amount_other: bytes  # 9F03, 6 bytes
    terminal_country: bytes  # 9F1A, 2 bytes
    tvr: bytes  # 95, 5 bytes
    currency: bytes  # 5F2A, 2 bytes
    date: bytes  # 9A, YYMMDD BCD, 3 bytes
    txn_type: bytes  # 9C, 1 byte
    unpredictable_number: bytes  # 9F37, 4 bytes
    aip: bytes  # 82, 2 bytes
    atc: bytes  # 9F36, 2 bytes
    iad: bytes = b""  # 9F10, 0..32 bytes

    _LENGTHS = (6, 6, 2, 5, 2, 3, 1, 4, 2, 2)

    def to_bytes(self) -> bytes:
        fields = (
            self.amount_authorised,
            self.amount_other,
            self.terminal_country,
            self.tvr,
            self.currency,
            self.date,
            self.txn_type,
            self.unpredictable_number,
            self.aip,
            self.atc,
        )
        for value, n in zip(fields, self._LENGTHS, strict=True):
            _check_len(value, n, "CDOL1 data element")
        if len(self.iad) > 32:
            raise EmvError("issuer application data must be at most 32 bytes")
        return b"".join(fields) + bytes(self.iad)


def _check_data(data: bytes) -> bytes:
    if not isinstance(data, bytes | bytearray) or not data:
        raise EmvError("ARQC data must be non-empty bytes")
    return bytes(data)


def _ac(sk: DesKeyPair, data: bytes) -> bytes:
    return mac_algorithm_3(sk, pad_method_2(_check_data(data)))


def _arpc_method_1(sk: DesKeyPair, arqc: bytes, arc: bytes) -> bytes:
    arqc = _check_len(arqc, 8, "ARQC")
    arc = _check_len(arc, 2, "ARC")
    block = bytes(a ^ b for a, b in zip(arqc, arc + bytes(6), strict=True))
    arpc: bytes = sk.pair.encrypt(block, mechanism=Mechanism.DES3_ECB)
    return arpc


@dataclass(frozen=True, slots=True)
class ArqcCheck:
    """Outcome of an issuer ARQC check: ``arpc`` only when the ARQC verified."""

    valid: bool
    arpc: bytes | None = None


def verify_arqc(
    session: Any, imk: Any, pan: str, psn: str, atc: bytes, data: bytes, arqc: bytes
) -> bool:
    """Issuer: does ``arqc`` match the CDOL1 ``data`` for this card and ATC? (constant time)"""
    return check_arqc(session, imk, pan, psn, atc, data, arqc, None).valid


def check_arqc(
    session: Any,
    imk: Any,
    pan: str,
    psn: str,
    atc: bytes,
    data: bytes,
    arqc: bytes,
    arc: bytes | None,
) -> ArqcCheck:
    """Issuer, one HSM job: verify the ARQC and, when it verifies and ``arc`` (the 2-byte
    authorisation response code, e.g. b"00" or b"05") is given, generate ARPC method 1 under
    the same session key. An invalid ARQC gets no ARPC (the issuer declines, 05)."""
    arqc = _check_len(arqc, 8, "ARQC")
    _check_len(atc, 2, "ATC")
    _check_data(data)
    if arc is not None:
        _check_len(arc, 2, "ARC")
    with _issuer_session_keys(imk, pan, psn, atc) as sk:
        expected = _ac(sk, data)
        if not hmac.compare_digest(expected, arqc):
            return ArqcCheck(False)
        return ArqcCheck(True, None if arc is None else _arpc_method_1(sk, arqc, arc))


def generate_arpc(
    session: Any, imk: Any, pan: str, psn: str, atc: bytes, arqc: bytes, arc: bytes
) -> bytes:
    """Issuer: ARPC method 1 for an ARQC already verified (prefer :func:`check_arqc`)."""
    with _issuer_session_keys(imk, pan, psn, atc) as sk:
        return _arpc_method_1(sk, arqc, arc)


# --- card side (simulator) ----------------------------------------------------------------------


def personalise_card(
    session: Any, imk: Any, pan: str, psn: str, *, label: str, token: bool = True
) -> Any:
    """SIMULATOR: the card's ICC master key, as personalisation would load it into the chip.

    Derived from the issuer's IMK inside the HSM and stored under ``label`` (never a PAN: use the
    card's surrogate token or an id), DERIVE only and non-extractable: the simulated chip is an
    object in the token, so no card key exists in clear anywhere.
    """
    return derive_icc_master_key(imk, pan, psn, label=label, token=token)


def card_generate_arqc(session: Any, icc_mk: Any, atc: bytes, data: bytes) -> bytes:
    """SIMULATOR card: the ARQC (GENERATE AC) over ``data`` with the session key for ``atc``."""
    sk = derive_session_keys(icc_mk, atc)
    try:
        return _ac(sk, data)
    finally:
        sk.destroy()


def card_verify_arpc(
    session: Any, icc_mk: Any, atc: bytes, arqc: bytes, arc: bytes, arpc: bytes
) -> bool:
    """SIMULATOR card: issuer authentication (EXTERNAL AUTHENTICATE) of an ARPC method 1."""
    sk = derive_session_keys(icc_mk, atc)
    try:
        return hmac.compare_digest(_arpc_method_1(sk, arqc, arc), _check_len(arpc, 8, "ARPC"))
    finally:
        sk.destroy()
