"""The issuer's stand-in key (``<issuer>/stip``, shared with the switch as
``switch/stip.<issuer>``): card digests and the MAC of the stand-in file.

The issuer cannot compute the switch's card tokens (HMAC under the switch's own tokenization
key), and the switch must not learn PANs it has not seen. So the issuer names each card in its
stand-in file by a keyed digest under a key both hold: HMAC-SHA256 of the PAN under the shared
stand-in key, with its own domain. The switch computes the same digest of the PAN it holds in
its HSM job and looks the card up; nobody without the key can link a digest to a PAN (a bare
hash of a PAN is brute-forced in minutes). The same key MACs the whole file, so a file edited
on its way (a blocked card unblocked, a PVV swapped) is refused by the switch.
"""

from __future__ import annotations

import hmac
from typing import Any

from pkcs11 import Mechanism

from hsm import labels as L
from hsm.pool import get_key

_CARD_DOMAIN = b"payswitch/stip/card/1\x00"
_FILE_DOMAIN = b"payswitch/stip/file/1\x00"


def issuer_label(issuer_id: str) -> str:
    return L.label(issuer_id, L.STIP)


def switch_label(issuer_id: str) -> str:
    """The switch's copy of ``issuer_id``'s stand-in key."""
    return L.label(L.SWITCH, L.shared(L.STIP, issuer_id))


def card_digest(session: Any, key_label: str, pan: str) -> str:
    """Keyed digest (hex) of a PAN under a stand-in key: the card's name in the file."""
    mac: bytes = get_key(session, key_label).sign(
        _CARD_DOMAIN + pan.encode("ascii"), mechanism=Mechanism.SHA256_HMAC
    )
    return mac.hex()


def file_mac(session: Any, key_label: str, body: bytes) -> bytes:
    """HMAC-SHA256 of a stand-in file's body under the stand-in key."""
    out: bytes = get_key(session, key_label).sign(
        _FILE_DOMAIN + body, mechanism=Mechanism.SHA256_HMAC
    )
    return out


def check_file_mac(session: Any, key_label: str, body: bytes, mac: bytes) -> bool:
    """Does ``mac`` authenticate ``body``? (constant time)"""
    return hmac.compare_digest(file_mac(session, key_label, body), mac)
