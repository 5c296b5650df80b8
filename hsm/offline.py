"""Offline-payment signing keys: ECDSA P-256 pairs generated in a token, versioned.

An issuer's offline key (``<issuer>/offline/v<N>``) signs allowances; a payer device's key
(``<device>/offline/v1`` in the device's own token, standing in for its secure element) signs
spends. The private key is SENSITIVE and not EXTRACTABLE; the public key is read as a 65-byte
uncompressed point for whoever verifies. SoftHSM has no CKM_ECDSA_SHA256, so callers hash with
SHA-256 outside and this signs the digest with CKM_ECDSA (64 bytes r || s).

Rotation makes version N + 1; verifiers accept the current and the previous version
(``payswitch/offline/checks.py``), so allowances signed just before a rotation still spend.
These are HSM job steps: call them through ``HsmPool.run``.
"""

from __future__ import annotations

from typing import Any

from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from hsm import labels as L
from hsm.errors import HsmError
from hsm.pool import get_key

PURPOSE = "offline"


def label(owner: str, version: int) -> str:
    return L.label(owner, PURPOSE, version)


def versions(session: Any, owner: str) -> list[int]:
    """Versions of ``owner``'s offline key present in the token, ascending."""
    found = set()
    for obj in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}):
        try:
            parsed = L.parse(str(obj[Attribute.LABEL]))
        except ValueError:
            continue
        if parsed.owner == owner and parsed.purpose == PURPOSE:
            found.add(parsed.version)
    return sorted(found)


def generate(session: Any, owner: str, version: int) -> bytes:
    """Make ``owner``'s offline key pair of ``version``; returns the public point."""
    name = label(owner, version)
    params = encode_named_curve_parameters("secp256r1")
    pub, _priv = session.generate_keypair(
        KeyType.EC,
        store=True,
        label=name,
        public_template={Attribute.EC_PARAMS: params, Attribute.VERIFY: True},
        private_template={
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
        },
    )
    return _point(pub)


def ensure(session: Any, owner: str) -> int:
    """The current version, making v1 when there is none."""
    have = versions(session, owner)
    if have:
        return have[-1]
    generate(session, owner, 1)
    return 1


def rotate(session: Any, owner: str) -> int:
    """A new version after the newest; returns it."""
    have = versions(session, owner)
    version = (have[-1] + 1) if have else 1
    generate(session, owner, version)
    return version


def _point(pub: Any) -> bytes:
    raw = bytes(pub[Attribute.EC_POINT])
    # DER OCTET STRING (0x04, length 65) around the uncompressed point.
    if len(raw) == 67 and raw[0] == 0x04 and raw[1] == 65:
        raw = raw[2:]
    if len(raw) != 65 or raw[0] != 0x04:
        raise HsmError("EC public key is not an uncompressed P-256 point")
    return raw


def public_key(session: Any, owner: str, version: int) -> bytes:
    return _point(get_key(session, label(owner, version), ObjectClass.PUBLIC_KEY))


def public_keys(session: Any, owner: str) -> dict[int, bytes]:
    """Every version's public point (the current and older ones)."""
    return {v: public_key(session, owner, v) for v in versions(session, owner)}


def sign_digest(session: Any, owner: str, version: int, digest: bytes) -> bytes:
    """CKM_ECDSA over a SHA-256 digest: 64 bytes r || s."""
    if len(digest) != 32:
        raise HsmError("offline signatures are over a 32-byte SHA-256 digest")
    key = get_key(session, label(owner, version), ObjectClass.PRIVATE_KEY)
    sig: bytes = key.sign(digest, mechanism=Mechanism.ECDSA)
    return bytes(sig)
