"""The PIN pad's side of ISO 9564-1 format 4: build a PIN block, or read one in a test.

The terminal owns its DUKPT keys in software (``terminals.secure_element``), so a block is
built from a one-block AES encryption callable, e.g. ``Transaction.pin_encrypt_block``, or
from a clear test key with ``cryptography``. The field layout (``hsm.pinblock``) is the one the
HSM side opens; nothing here is ever used by the switch or the issuer.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from hsm.pinblock import check_block, check_pin_field, pan_field, pin_field, xor_into, zeroize

BlockCipher = Callable[[bytes], bytes]


def _aes_ecb(key: bytes, decrypt: bool = False) -> BlockCipher:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    cipher = Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305 - format 4 uses ECB steps
    if decrypt:
        return lambda block: cipher.decryptor().update(block)
    return lambda block: cipher.encryptor().update(block)


def sim_encipher_pin_block(
    cipher: bytes | BlockCipher, pin: str, pan: str, fill: bytes | None = None
) -> bytes:
    """SIMULATOR/TEST ONLY: a format 4 block as a PIN pad builds it.

    ``cipher`` encrypts one 16-byte block under the terminal's PIN key (a secure-element
    callable), or is a clear AES test key. ``fill`` fixes the random half (published vectors).
    """
    encrypt = _aes_ecb(cipher) if isinstance(cipher, bytes) else cipher
    field = pin_field(pin, os.urandom(8) if fill is None else fill)
    pfield = pan_field(pan)
    a = bytearray(encrypt(bytes(field)))
    try:
        xor_into(a, pfield)
        return encrypt(bytes(a))
    finally:
        zeroize(field, a, pfield)


def sim_decipher_pin_block(key: bytes, pin_block: bytes, pan: str) -> str:
    """TEST ONLY: the PIN inside a format 4 block under a clear AES key (format checked)."""
    decrypt = _aes_ecb(key, decrypt=True)
    a = bytearray(decrypt(check_block(pin_block)))
    xor_into(a, pan_field(pan))
    field = bytearray(decrypt(bytes(a)))
    n = check_pin_field(field)
    return field[:8].hex()[2 : 2 + n]
