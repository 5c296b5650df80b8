"""Card-data protection the pipeline needs: a surrogate token per PAN and keyed digests of
request content (idempotency fingerprints), so that no PAN reaches the store, even hashed.

Both are keyed MACs. ``HsmCardProtector`` computes them in the HSM (hsm.tokens); the
software variant exists for unit tests of the pipeline only and is refused by the server.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol


class CardProtector(Protocol):
    async def tokenize(self, pan: str) -> str:
        """Deterministic surrogate for a PAN: same PAN, same token; first 6 and last 4 kept."""
        ...

    async def digest(self, data: bytes) -> str:
        """Keyed digest (hex) of request content for idempotency fingerprints."""
        ...


class SoftwareCardProtector:
    """HMAC-SHA256 in Python under a caller-supplied key: for unit tests only."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    async def tokenize(self, pan: str) -> str:
        mac = hmac.new(self._key, b"token|" + pan.encode(), hashlib.sha256).hexdigest()
        middle = "".join(str(int(c, 16) % 10) for c in mac[: len(pan) - 10])
        return pan[:6] + middle + pan[-4:]

    async def digest(self, data: bytes) -> str:
        return hmac.new(self._key, b"fp|" + data, hashlib.sha256).hexdigest()


def canonical(*fields: object) -> bytes:
    """Unambiguous byte form of a field list (length-prefixed), input to ``digest``."""
    out = bytearray()
    for f in fields:
        raw = str(f).encode()
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)
