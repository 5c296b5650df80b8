"""The simulated terminal's secure element: AES-DUKPT on the terminal side, in software.

A real POS terminal keeps its DUKPT keys in a tamper-responsive secure element, not an HSM. The
simulator has none, so this module IS that secure element: it holds the initial key (IK) in
process memory only, derives the per-transaction keys with the ``cryptography`` package's AES, and
exposes operations, never keys. It is the only place in ``hsm/`` where a cryptographic primitive
on a key runs in Python, and it is never used on the switch side (the switch uses ``hsm.dukpt``,
all in the HSM).

Simplification: a real terminal discards the IK after loading and keeps up to 32 intermediate
derivation keys (the X9.24-3 terminal algorithm); the simulator recomputes the transaction key
from the IK with the host algorithm, which yields the same keys.

Loading: :meth:`SecureElement.transport_public_key` gives an RSA-2048 public key; the key
injection facility (``hsm.kif.wrap_initial_key_for_terminal``, in its HSM) returns the IK wrapped
under it; :meth:`SecureElement.load_initial_key` unwraps it. Nothing is persisted: a simulated
terminal is re-injected (new initial key ID, counter from 1) every time it starts, so no key
ever lands in a file.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from hsm.dukpt import IKID_LEN, MAX_COUNTER_BITS, ZERO_IV, KeyUsage, Ksn, derivation_data


def _aes_ecb(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - X9.24-3 derivation
    return enc.update(block) + enc.finalize()


def next_counter(counter: int) -> int:
    """Next valid X9.24-3 counter: skip values with more than 16 one-bits."""
    c = counter + 1
    while c.bit_count() > MAX_COUNTER_BITS:
        c += c & -c
    if c >= 2**32:
        raise OverflowError("DUKPT counter exhausted: the terminal needs a new initial key")
    return c


def new_ikid(bdk_id: bytes = b"\x00\x00\x00\x01") -> bytes:
    """A fresh initial key ID: 4-byte BDK ID || 4-byte random device ID (not secret)."""
    if len(bdk_id) != 4:
        raise ValueError("BDK ID must be 4 bytes")
    return bdk_id + os.urandom(4)


class Transaction:
    """One transaction's DUKPT keys inside the simulated secure element."""

    def __init__(self, derivation_key: bytes, ksn: Ksn) -> None:
        self._dk = derivation_key
        self.ksn = ksn

    def _working(self, usage: KeyUsage) -> bytes:
        return _aes_ecb(self._dk, derivation_data(usage, self.ksn.ikid, self.ksn.counter))

    def encrypt_card_data(self, plaintext: bytes) -> bytes:
        """AES-CBC, zero IV, PKCS#7, under the data-encryption key (see ``hsm.dukpt``)."""
        padder = padding.PKCS7(128).padder()
        data = padder.update(plaintext) + padder.finalize()
        key = self._working(KeyUsage.DATA_ENCRYPT)
        enc = Cipher(algorithms.AES(key), modes.CBC(ZERO_IV)).encryptor()
        return enc.update(data) + enc.finalize()

    def mac(self, message: bytes) -> bytes:
        """AES-CMAC (16 bytes) under the MAC-generation key: the request MAC."""
        c = CMAC(algorithms.AES(self._working(KeyUsage.MAC_GENERATION)))
        c.update(message)
        return c.finalize()

    def response_mac(self, message: bytes) -> bytes:
        """AES-CMAC under the MAC-verification key: what the terminal expects on a response."""
        c = CMAC(algorithms.AES(self._working(KeyUsage.MAC_VERIFICATION)))
        c.update(message)
        return c.finalize()

    def pin_encrypt_block(self, block: bytes) -> bytes:
        """AES-ECB of one 16-byte block under the PIN-encryption key (ISO 9564 format 4 steps)."""
        if len(block) != 16:
            raise ValueError("PIN block steps work on one 16-byte block")
        return _aes_ecb(self._working(KeyUsage.PIN_ENCRYPTION), block)


class SecureElement:
    """A terminal's DUKPT key storage. ``repr`` and errors never show key material."""

    def __init__(self) -> None:
        self._transport: rsa.RSAPrivateKey | None = None
        self._ik: bytes | None = None
        self.ikid: bytes | None = None
        self.counter = 0

    def __repr__(self) -> str:
        ikid = self.ikid.hex().upper() if self.ikid else None
        return f"SecureElement(ikid={ikid}, counter={self.counter})"

    def transport_public_key(self) -> tuple[bytes, bytes]:
        """(modulus, public exponent), big-endian, of a fresh RSA-2048 transport key."""
        self._transport = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        nums = self._transport.public_key().public_numbers()
        return nums.n.to_bytes(256, "big"), nums.e.to_bytes(3, "big")

    def load_initial_key(self, ikid: bytes, wrapped: bytes) -> None:
        """Unwrap the IK sent by key injection; the transport key is discarded afterwards."""
        if self._transport is None:
            raise RuntimeError("no transport key: call transport_public_key() first")
        oaep = asym_padding.OAEP(
            mgf=asym_padding.MGF1(hashes.SHA1()),  # noqa: S303 - SoftHSM's only OAEP hash
            algorithm=hashes.SHA1(),  # noqa: S303
            label=None,
        )
        ik = self._transport.decrypt(wrapped, oaep)
        self._transport = None
        self._set(ikid, ik)

    @classmethod
    def with_initial_key(cls, ikid: bytes, initial_key: bytes, counter: int = 0) -> SecureElement:
        """Test fixture constructor (published vectors): load a known IK directly."""
        se = cls()
        se._set(ikid, initial_key)
        se.counter = counter
        return se

    def _set(self, ikid: bytes, ik: bytes) -> None:
        if len(ikid) != IKID_LEN or len(ik) != 16:
            raise ValueError("AES-128 DUKPT needs an 8-byte initial key ID and a 16-byte IK")
        self.ikid, self._ik, self.counter = bytes(ikid), bytes(ik), 0

    def transaction_at(self, counter: int) -> Transaction:
        """Keys for a given counter (host algorithm from the IK)."""
        if self._ik is None or self.ikid is None:
            raise RuntimeError("no initial key loaded")
        ksn = Ksn(self.ikid, counter)
        key = self._ik
        working = 0
        mask = 0x80000000
        while mask:
            if counter & mask:
                working |= mask
                key = _aes_ecb(key, derivation_data(KeyUsage.KEY_DERIVATION, self.ikid, working))
            mask >>= 1
        return Transaction(key, ksn)

    def begin(self) -> Transaction:
        """Advance the counter and return the new transaction's keys."""
        self.counter = next_counter(self.counter)
        return self.transaction_at(self.counter)
