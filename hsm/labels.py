"""Key labels: ``<owner>/<purpose>/v<version>``, the only contract between key users.

Owners are ``switch``, each acquirer id and each issuer id of the topology, and ``kif`` (the
key-injection facility). Each party has its own token (``hsm.config``) and only its own labels
in it; the owner prefix still tells an operator whose key a label is.

Purposes (key type, PKCS#11 capabilities) are fixed in ``hsm.keys.PURPOSES``. A key shared
between two parties is labelled ``<base>.<other party>`` on each side: ``zpk.<peer>`` is the zone
PIN key an owner shares with ``peer`` (``switch/zpk.acq-alpha`` is ``acq-alpha/zpk.switch``),
``bdk.switch`` is the KIF's copy of the switch's BDK, ``kek.<peer>`` the key block protection key
two parties exchange keys under (``hsm.keyblock``). ``transport`` is a party's RSA key pair
other parties send it KEKs under (``hsm.exchange``). The keys an issuer shares with the network
for stand-in are held by the switch the same way: ``bank-a/cvk`` is ``switch/cvk.bank-a``.
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
KEK = "kek"  # AES-256 key block protection key, purpose "kek.<peer>": DERIVE only
TRANSPORT = "transport"  # RSA-2048 pair: the private key UNWRAPs KEKs sent to this party
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


def shared(purpose: str, other: str) -> str:
    """Purpose name, on one side, of a key shared with ``other``: ``<base>.<other>``."""
    return f"{purpose.split('.', 1)[0]}.{other}"
