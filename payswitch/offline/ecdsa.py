"""ECDSA P-256 / SHA-256 as every offline party uses it.

Signatures are the 64-byte ``r || s`` form a PKCS#11 ``CKM_ECDSA`` returns (each 32 bytes,
big-endian), not DER: fixed length, one encoding, easy to produce in any language. Public keys
are 65-byte uncompressed SEC1 points (``0x04 || X || Y``). The digest is SHA-256 of the
canonical bytes (``payswitch.offline.formats``); SoftHSM has no ``CKM_ECDSA_SHA256``, so
signers hash outside and sign the digest.

``SoftwareKey`` exists for tests, the seeded campaign and benchmarks only (a key in process
memory); issuers sign in their HSM (``hsm/offline.py``) and devices in their own token.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SIG_LEN = 64
PUB_LEN = 65
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class Signer(Protocol):
    """Whatever holds a private key: signs a SHA-256 digest, returns r || s."""

    def public_key(self) -> bytes: ...

    def sign_digest(self, digest: bytes) -> bytes: ...


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def load_public(point: bytes) -> ec.EllipticCurvePublicKey:
    """A 65-byte uncompressed P-256 point; ValueError when it is not one on the curve."""
    if len(point) != PUB_LEN or point[0] != 4:
        raise ValueError("public key must be a 65-byte uncompressed P-256 point")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


def verify_digest(point: bytes, digest: bytes, signature: bytes) -> bool:
    """True when ``signature`` (r || s) is valid for ``digest`` under ``point``; never raises
    for malformed input (a malformed key or signature simply does not verify)."""
    if len(signature) != SIG_LEN or len(digest) != 32:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < _N and 0 < s < _N):
        return False
    try:
        key = load_public(point)
        key.verify(encode_dss_signature(r, s), digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except (InvalidSignature, ValueError):
        return False
    return True


def verify(point: bytes, message: bytes, signature: bytes) -> bool:
    """Verify ``signature`` over SHA-256(``message``)."""
    return verify_digest(point, sha256(message), signature)


def raw_signature(der: bytes) -> bytes:
    """DER ECDSA-Sig-Value to r || s."""
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class SoftwareKey:
    """A P-256 key in process memory: tests, the campaign and benchmarks only."""

    def __init__(self, private: ec.EllipticCurvePrivateKey | None = None) -> None:
        self._key = private or ec.generate_private_key(ec.SECP256R1())

    @classmethod
    def from_scalar(cls, scalar: int) -> SoftwareKey:
        return cls(ec.derive_private_key(scalar, ec.SECP256R1()))

    def public_key(self) -> bytes:
        return self._key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)

    def sign_digest(self, digest: bytes) -> bytes:
        der = self._key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        return raw_signature(der)

    def __repr__(self) -> str:
        return "SoftwareKey(<private>)"
