"""The key-injection facility's HSM side: a terminal's initial key, wrapped for its device only.

Only the KIF runs this, in its own token (``kif``), from its copy of the switch's BDK
(``kif/bdk.switch/v1``, received as a key block in the ceremony, ``hsm.exchange``). The switch
never imports this module (an import-linter contract in ``pyproject.toml``), and the switch's
token holds no wrapping key.

Limit (SoftHSM, written down honestly): PKCS#11 lets any holder of a DERIVE key choose the
template of what it derives, EXTRACTABLE included, and lets any logged-in user import a clear
key of their own with WRAP. So whoever holds the switch's PIN could still derive an initial key
from ``switch/bdk/v1`` and wrap it out; a payment HSM stops that with its command policy (the
BDK may only derive working keys, never an exportable IK), SoftHSM cannot. What this split does
buy: the switch's code has no path that does it, and the KIF's PIN is not on the transaction
host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass

from hsm import labels as L
from hsm.config import KIF
from hsm.dukpt import IKID_LEN, KeyUsage, derivation_data
from hsm.keys import compute_kcv
from hsm.pool import get_key
from hsm.templates import secret_key_template, validate

KIF_BDK_LABEL = L.label(KIF, L.shared(L.BDK, L.SWITCH), 1)
MIN_RSA_BYTES = 256


@dataclass(frozen=True, slots=True)
class WrappedInitialKey:
    """The IK under the device's transport key, and its KCV (for the audit line; not secret)."""

    wrapped: bytes
    kcv: str


def wrap_initial_key_for_terminal(
    session: Any,
    ikid: bytes,
    rsa_modulus: bytes,
    rsa_exponent: bytes,
    bdk: str | Any = KIF_BDK_LABEL,
) -> WrappedInitialKey:
    """Key injection: the device's IK, wrapped for its secure element (RSA-OAEP, SHA-1).

    TR-34 in spirit: the device's secure element generates an RSA key pair and hands over its
    public key; the HSM derives the IK from the BDK as a session key that is SENSITIVE but
    EXTRACTABLE (so it can be wrapped, and only wrapped), wraps it under that public key with
    CKM_RSA_PKCS_OAEP (SoftHSM offers SHA-1 only), and destroys both. The IK never exists in
    clear outside the HSM and the device. Whether the device may have it is the caller's check
    (the KIF's device register).
    """
    if len(ikid) != IKID_LEN:
        raise ValueError("initial key ID must be 8 bytes")
    if len(rsa_modulus) < MIN_RSA_BYTES:
        raise ValueError("terminal transport key must be RSA-2048 or larger")
    bdk_key = get_key(session, bdk) if isinstance(bdk, str) else bdk
    pub_tpl = validate(
        {
            Attribute.CLASS: ObjectClass.PUBLIC_KEY,
            Attribute.KEY_TYPE: KeyType.RSA,
            Attribute.TOKEN: False,
            Attribute.MODULUS: bytes(rsa_modulus),
            Attribute.PUBLIC_EXPONENT: bytes(rsa_exponent),
            Attribute.WRAP: True,
            Attribute.ENCRYPT: False,
            Attribute.VERIFY: False,
        }
    )
    transport = session.create_object(pub_tpl)
    try:
        tpl = secret_key_template(
            token=False, capabilities={Attribute.SIGN}, extra={Attribute.EXTRACTABLE: True}
        )
        ik = bdk_key.derive_key(
            KeyType.AES,
            128,
            mechanism=Mechanism.AES_ECB_ENCRYPT_DATA,
            mechanism_param=derivation_data(KeyUsage.KEY_DERIVATION_INITIAL, ikid),
            template=tpl,
        )
        try:
            kcv = compute_kcv(ik, KeyType.AES).hex().upper()
            wrapped: bytes = transport.wrap_key(
                ik,
                mechanism=Mechanism.RSA_PKCS_OAEP,
                mechanism_param=(Mechanism.SHA_1, MGF.SHA1, None),
            )
            return WrappedInitialKey(wrapped, kcv)
        finally:
            ik.destroy()
    finally:
        transport.destroy()
