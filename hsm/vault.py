"""The PAN vault's encryption: AES-256-GCM in the HSM under a versioned vault key.

Blob layout (all binary): ``0x01`` (format) || key version (2 bytes, big-endian) || IV (12 bytes,
from C_GenerateRandom) || ciphertext || tag (16 bytes). The format byte and key version are also
the start of the GCM additional data, followed by the caller's ``aad`` (bind a blob to its
record, e.g. the PAN token, so blobs cannot be swapped between records): tampering with any of
them fails the tag check (:class:`IntegrityError`).

Versions (``switch/vault/v<n>``, see ``hsm.keys``): new encryptions use the current version, the
highest one still allowed to encrypt; :func:`decrypt` accepts any version that is not retired.
:func:`rotate` creates a new version and turns the older ones decrypt-only (enforced by the
token's CKA_ENCRYPT flag). :func:`reencrypt` moves one blob to the current version, for a
background job or lazily on read; once no blob references a version, ``payswitch-hsm retire``
disables it. Re-encryption decrypts into host memory for an instant (PKCS#11 has no
re-encrypt), inside one job; the plaintext is never logged or returned by it.

The current version is cached for :data:`CURRENT_TTL` seconds per process: after a rotation in
another process, this one may encrypt under the previous version for that long, which is harmless
(still decryptable) and fixed by the next :func:`reencrypt` pass.
"""

from __future__ import annotations

import time
from typing import Any

from pkcs11 import Attribute, GCMParams, Mechanism
from pkcs11 import exceptions as px

from hsm import keys
from hsm import labels as L
from hsm.errors import IntegrityError, KeyRetired
from hsm.pool import get_key, scratch

FORMAT = 1
IV_LEN = 12
TAG_LEN = 16
HEADER_LEN = 1 + 2 + IV_LEN
CURRENT_TTL = 5.0
OWNER = L.SWITCH
_CACHE = "vault.current"


def _label(version: int) -> str:
    return L.label(OWNER, L.VAULT, version)


def current_version(session: Any, *, refresh: bool = False) -> int:
    """The version new blobs use (cached per session for ``CURRENT_TTL`` seconds)."""
    cache = scratch(session)
    hit = cache.get(_CACHE)
    now = time.monotonic()
    if hit is not None and not refresh and now - hit[1] < CURRENT_TTL:
        cached: int = hit[0]
        return cached
    version = keys.current_version(session, OWNER, L.VAULT)
    cache[_CACHE] = (version, now)
    return version


def blob_version(blob: bytes) -> int:
    """Key version a blob was written with (no HSM call)."""
    if len(blob) < HEADER_LEN + TAG_LEN or blob[0] != FORMAT:
        raise IntegrityError("not a vault blob")
    version = int.from_bytes(blob[1:3], "big")
    if version == 0:
        raise IntegrityError("not a vault blob")
    return version


def _seal(session: Any, version: int, plaintext: bytes, aad: bytes) -> bytes:
    header = bytes((FORMAT,)) + version.to_bytes(2, "big")
    iv: bytes = session.generate_random(IV_LEN * 8)
    params = GCMParams(iv, header + bytes(aad), TAG_LEN * 8)
    ct: bytes = get_key(session, _label(version)).encrypt(
        plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=params
    )
    return header + iv + ct


def encrypt(session: Any, plaintext: bytes, aad: bytes = b"") -> bytes:
    """Job: seal ``plaintext`` under the current vault key version."""
    version = current_version(session)
    try:
        return _seal(session, version, plaintext, aad)
    except px.PKCS11Error as exc:
        if isinstance(exc, px.GeneralError):
            raise
        # The cached version lost CKA_ENCRYPT (rotated elsewhere): refresh once.
        fresh = current_version(session, refresh=True)
        if fresh == version:
            raise
        return _seal(session, fresh, plaintext, aad)


def decrypt(session: Any, blob: bytes, aad: bytes = b"") -> bytes:
    """Job: open a blob written under any non-retired version."""
    version = blob_version(blob)
    key = get_key(session, _label(version))
    if not key[Attribute.DECRYPT]:
        raise KeyRetired(f"{_label(version)} is retired")
    header, iv, ct = blob[:3], blob[3:HEADER_LEN], blob[HEADER_LEN:]
    params = GCMParams(iv, header + bytes(aad), TAG_LEN * 8)
    try:
        plain: bytes = key.decrypt(ct, mechanism=Mechanism.AES_GCM, mechanism_param=params)
        return plain
    except (px.GeneralError, px.EncryptedDataInvalid, px.EncryptedDataLenRange) as exc:
        # SoftHSM reports a failed GCM tag as CKR_GENERAL_ERROR; the session stays usable.
        raise IntegrityError("vault blob failed authentication") from exc


def reencrypt(session: Any, blob: bytes, aad: bytes = b"") -> bytes | None:
    """Job: the blob under the current version, or None when it already is."""
    current = current_version(session)
    if blob_version(blob) == current:
        return None
    plain = bytearray(decrypt(session, blob, aad))
    try:
        return _seal(session, current, bytes(plain), aad)
    finally:
        plain[:] = bytes(len(plain))


def reencrypt_many(session: Any, blobs: list[tuple[bytes, bytes]]) -> list[bytes | None]:
    """Job: :func:`reencrypt` for a batch of (blob, aad) pairs (one executor hop)."""
    return [reencrypt(session, b, a) for b, a in blobs]


def rotate(session: Any) -> keys.KeyInfo:
    """Job: new vault key version for new encryptions; older ones become decrypt-only."""
    info = keys.rotate(session, OWNER, L.VAULT)
    scratch(session).pop(_CACHE, None)
    return info


def retire(session: Any, version: int) -> keys.KeyInfo:
    """Job: disable an old version entirely (after every blob was re-encrypted)."""
    info = keys.retire(session, _label(version))
    scratch(session).pop(_CACHE, None)
    return info
