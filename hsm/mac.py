"""Integrity on the terminal link: AES-CMAC under the DUKPT MAC keys of the request's KSN.

The terminal MACs the canonical form of its request (``payswitch.seclink.canonical_request``)
with the MAC-generation key of the KSN; the switch derives the same key in the HSM, recomputes
the CMAC there (CKM_AES_CMAC, full 16 bytes; SoftHSM has no CMAC_GENERAL, and we do not
truncate) and compares in constant time. A mismatch raises :class:`IntegrityError` and the
request is refused. The MAC covers the card-data ciphertext and the PIN block, and is checked
before anything is decrypted (encrypt-then-MAC).

Answers go the other way: the switch MACs the canonical form of each answer
(``payswitch.seclink.canonical_response``) under the MAC-verification key of the request's KSN
(X9.24-3 key usage 0x2001, the "response" MAC key: distinct from the request's 0x2000 key, so a
request MAC can never pass for an answer's), and the terminal's secure element checks it.
"""

from __future__ import annotations

import hmac
from typing import Any

from pkcs11 import Mechanism

from hsm.dukpt import BDK_LABEL, KeyUsage, Ksn, TransactionKey, cbc_decrypt, transaction_key
from hsm.errors import IntegrityError

MAC_LEN = 16


def _as_ksn(ksn: Ksn | bytes) -> Ksn:
    return ksn if isinstance(ksn, Ksn) else Ksn.from_bytes(ksn)


def check_mac(tk: TransactionKey, message: bytes, mac: bytes) -> None:
    """Recompute the request CMAC in the HSM; constant-time compare; raise on mismatch."""
    if len(mac) != MAC_LEN:
        raise IntegrityError("request MAC has the wrong length")
    key = tk.working_key(KeyUsage.MAC_GENERATION)
    expected = key.sign(message, mechanism=Mechanism.AES_CMAC)
    if not hmac.compare_digest(expected, mac):
        raise IntegrityError("request MAC does not verify")


def verify_request_mac(
    session: Any, ksn: Ksn | bytes, message: bytes, mac: bytes, bdk: str | Any = BDK_LABEL
) -> None:
    """Job: verify a terminal request's MAC (raises :class:`IntegrityError`)."""
    with transaction_key(session, _as_ksn(ksn), bdk) as tk:
        check_mac(tk, message, mac)


def request_mac(
    session: Any, ksn: Ksn | bytes, message: bytes, bdk: str | Any = BDK_LABEL
) -> bytes:
    """Job: the request MAC as the terminal computes it (for tools and tests)."""
    with transaction_key(session, _as_ksn(ksn), bdk) as tk:
        mac: bytes = tk.working_key(KeyUsage.MAC_GENERATION).sign(
            message, mechanism=Mechanism.AES_CMAC
        )
        return mac


def sign_response(tk: TransactionKey, message: bytes) -> bytes:
    """The response CMAC (16 bytes) under the KSN's MAC-verification (response) key."""
    key = tk.working_key(KeyUsage.MAC_VERIFICATION)
    mac: bytes = key.sign(message, mechanism=Mechanism.AES_CMAC)
    return mac


def response_mac(
    session: Any, ksn: Ksn | bytes, message: bytes, bdk: str | Any = BDK_LABEL
) -> bytes:
    """Job: MAC of a response, under the KSN's MAC-verification key (the terminal checks it)."""
    with transaction_key(session, _as_ksn(ksn), bdk) as tk:
        return sign_response(tk, message)


def open_request(
    session: Any,
    message: bytes,
    ksn: Ksn | bytes,
    card_ciphertext: bytes,
    mac: bytes,
    bdk: str | Any = BDK_LABEL,
) -> bytes:
    """Job: verify the MAC, then decrypt the card data; one key derivation chain for both.

    ``message`` is the canonical form of the request as received, which covers ``ksn`` and
    ``card_ciphertext``, so the ciphertext decrypted is the one the MAC covered. Returns the
    card-data plaintext; raises :class:`IntegrityError` on a bad MAC or padding.
    """
    with transaction_key(session, _as_ksn(ksn), bdk) as tk:
        check_mac(tk, message, mac)
        return cbc_decrypt(tk.working_key(KeyUsage.DATA_ENCRYPT), card_ciphertext)
