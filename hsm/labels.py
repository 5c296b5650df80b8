"""Key labels: ``<owner>/<purpose>/v<version>``, the only contract between key users.

Owners are ``switch``, each acquirer id and each issuer id of the topology. Each party only
ever looks up keys under its own owner prefix, as if it had its own HSM; in this one-token
simulation the parties share SoftHSM, the labels keep them apart.

Purposes (key type, PKCS#11 capabilities) are fixed in :data:`PURPOSES`; ``zpk.<peer>`` is the
zone PIN key an owner shares with ``peer``. A key an owner shares with a peer is held by the
peer as ``<purpose>.<owner>``: the switch holds ``bank-a/cvk`` as ``switch/cvk.bank-a``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SWITCH = "switch"

BDK = "bdk"  # AES-128, DUKPT base derivation key: DERIVE only
TOKENIZATION = "token"  # GENERIC_SECRET 256, SHA256_HMAC surrogate tokens: SIGN/VERIFY
FINGERPRINT = "fingerprint"  # GENERIC_SECRET 256, SHA256_HMAC idempotency fingerprints
VAULT = "vault"  # AES-256, AES-GCM PAN vault: ENCRYPT/DECRYPT, versioned, rotated
ZPK = "zpk"  # AES-128 zone PIN key, purpose "zpk.<peer>": ENCRYPT/DECRYPT (ISO 9564-1 format 4)
CVK = "cvk"  # DES2 K_A||K_B, issuer CVK pair: ENCRYPT (made by hsm.cvv.create_cvk)
CVK_A = "cvk-a"  # DES2 K_A||K_A companion of CVK (single DES on SoftHSM): ENCRYPT
IMK_AC = "imk-ac"  # DES2 issuer master key for application cryptograms: DERIVE only
PVK = "pvk"  # AES-256 issuer PIN verification key (AES-CMAC PVV, hsm.pinblock): SIGN
STIP = "stip"  # GENERIC_SECRET 256, issuer's stand-in file MAC and card digests: SIGN/VERIFY

_OWNER = r"[a-z0-9][a-z0-9._-]{0,63}"
_PURPOSE = r"[a-z0-9][a-z0-9._-]{0,63}"
_LABEL = re.compile(
    rf"^(?P<owner>{_OWNER})/(?P<purpose>{_PURPOSE})/v(?P<version>[1-9][0-9]{{0,5}})$"
)


@dataclass(frozen=True, slots=True, order=True)
class KeyLabel:
    owner: str
    purpose: str
    version: int

    def __str__(self) -> str:
        return f"{self.owner}/{self.purpose}/v{self.version}"

    @property
    def family(self) -> str:
        """``<owner>/<purpose>``: all versions of one key."""
        return f"{self.owner}/{self.purpose}"


def label(owner: str, purpose: str, version: int = 1) -> str:
    """Build and validate a label string."""
    text = f"{owner}/{purpose}/v{version}"
    parse(text)
    return text


def parse(text: str) -> KeyLabel:
    m = _LABEL.match(text)
    if m is None:
        raise ValueError(f"not a key label: {text!r}")
    return KeyLabel(m["owner"], m["purpose"], int(m["version"]))


def zpk(owner: str, peer: str) -> str:
    """Purpose name of the zone PIN key ``owner`` shares with ``peer``."""
    return f"{ZPK}.{peer}"


def shared(purpose: str, owner: str) -> str:
    """Purpose name under which a peer holds the key ``owner`` shares with it: ``zpk.<peer>``
    of ``owner`` is the peer's ``zpk.<owner>``, ``cvk`` of ``owner`` is ``cvk.<owner>``."""
    return f"{purpose.split('.', 1)[0]}.{owner}"
