"""Card-data protection the pipeline needs, behind one interface (``CardProtector``):

- ``verify_request``: check the terminal's request MAC and compute the idempotency fingerprint
  (before anything is recorded: a forged or altered request changes no state);
  ``verify_mac`` does the same for the other money-moving requests (capture, void, refund,
  batch close), given their canonical bytes;
- ``response_mac``: the MAC of an answer under the request KSN's response key (one job per
  answer, after the work: the answer is not known before);
- ``open_card``: decrypt the card data, tokenize the PAN, seal it for the vault and translate
  the PIN block to the zone PIN key of the acquirer the request is routed to;
- ``tokenize`` / ``digest``: surrogate tokens and keyed digests (follow-up operations).

Each call is ONE job on the process's HSM thread (``switch.cardsec.hsm``), so a request crosses
the executor twice in all, however many keys it touches. No PAN reaches the store, not even
hashed: transactions carry the token, the vault an AES-GCM blob.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from payswitch.cards import Scheme
from payswitch.stipfile import StipFile
from switch.domain.standin import CardVerdict, IssuerBins, StandInCard


class RequestRejected(Exception):
    """The request MAC does not verify: refuse the request (UNAUTHENTICATED), record nothing."""


class CardDataRejected(ValueError):
    """Authenticated request whose card data or PIN block is unusable; ``field`` names the
    request field for the INVALID_ARGUMENT. The message never carries card data."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class OpenedCard:
    """What ``open_card`` yields. ``pan``, ``expiry`` and ``cvv2`` live only in memory for the
    forward to the acquirer; they are kept out of ``repr`` and never stored or logged."""

    pan: str = field(repr=False)
    expiry: str = field(repr=False)
    cvv2: str = field(repr=False)
    token: str  # full HMAC-SHA256 of the PAN (hex): the card's key in the store and vault
    masked_pan: str
    bin: str
    scheme: Scheme
    acquirer_ids: tuple[str, ...]  # routing, in the merchant's order of preference
    pin_block: bytes = field(repr=False)  # under switch/zpk.<acquirer_ids[0]>, or b""
    vault_blob: bytes = field(repr=False)  # hsm.vault blob of the PAN, AAD = token
    vault_version: int = 0


# The merchant's acquirers by card scheme, in its order of preference (the pipeline's "route"
# stage). The open job picks the card's by its scheme (never the PAN leaves the job), so that
# the PIN block is translated once, straight into the zone of the acquirer the request goes to.
Routes = Mapping[Scheme, tuple[str, ...]]


class CardProtector(Protocol):
    async def check_keys(self, acquirer_ids: tuple[str, ...]) -> None:
        """At start: every key the switch will use is there (BDK, token, fingerprint, an active
        vault key, a ZPK per acquirer); raise ``RuntimeError`` naming what is missing, so the
        switch does not start rather than decline every card (fail closed)."""
        ...

    async def verify_request(self, fields: Mapping[str, Any], mac: bytes, keyed: bool) -> str:
        """Verify the request MAC over ``payswitch.seclink.canonical_request(**fields)``; raise
        ``RequestRejected`` when it fails. Returns the idempotency fingerprint (hex) of the
        content when ``keyed``, else ""."""
        ...

    async def verify_mac(
        self, ksn: bytes, message: bytes, mac: bytes, fingerprint_input: bytes | None
    ) -> str:
        """Verify a request MAC over ``message`` under ``ksn``'s MAC-generation key; raise
        ``RequestRejected`` when it fails. Returns the idempotency fingerprint (hex) of
        ``fingerprint_input`` in the same job, or "" when it is None."""
        ...

    async def response_mac(self, ksn: bytes, message: bytes) -> bytes:
        """AES-CMAC of an answer's canonical bytes under ``ksn``'s MAC-verification (response)
        key: what the terminal checks."""
        ...

    async def open_card(
        self, ksn: bytes, ciphertext: bytes, pin_block: bytes, routes: Routes
    ) -> OpenedCard:
        """Decrypt and check the card data, tokenize, seal the PAN for the vault, take the
        card scheme's acquirers from ``routes``, translate the PIN block to the first one's
        zone PIN key; ``CardDataRejected`` for unusable data."""
        ...

    async def translate_pin(
        self, ksn: bytes, pin_block: bytes, pan: str, acquirer_id: str
    ) -> bytes:
        """Translate the terminal's DUKPT PIN block again, to ``acquirer_id``'s zone PIN key:
        an authorization failing over to another acquirer than the one ``open_card`` chose.
        ``CardDataRejected`` when it does not decipher."""
        ...

    async def reveal_pan(self, token: str, vault_blob: bytes) -> str:
        """The PAN of a vault blob (additional data = the token): for an advice, which must
        carry the card as the authorization did, long after the request's memory is gone."""
        ...

    async def standin_files(self, raws: Mapping[str, bytes]) -> dict[str, StipFile]:
        """The issuers' stand-in files (issuer id -> file bytes) whose MAC verifies under the
        switch's copy of that issuer's stand-in key; the others are left out (logged)."""
        ...

    async def standin_check(
        self, card: StandInCard, issuers: IssuerBins, files: Mapping[str, StipFile]
    ) -> CardVerdict:
        """Stand-in's checks of one card with the keys its issuer shared (``switch.cardsec.
        standin``): issuer file, card on it, status, ARQC, PIN, CVV2. One HSM job."""
        ...

    async def tokenize(self, pan: str) -> str:
        """Deterministic surrogate for a PAN: same PAN, same token; first 6 and last 4 kept."""
        ...

    async def digest(self, data: bytes) -> str:
        """Keyed digest (hex) of request content for idempotency fingerprints."""
        ...


def canonical(*fields: object) -> bytes:
    """Unambiguous byte form of a field list (length-prefixed), input to ``digest``."""
    out = bytearray()
    for f in fields:
        raw = str(f).encode()
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)
