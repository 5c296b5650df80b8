"""Card-data protection the pipeline needs: a surrogate token per PAN and keyed digests of
request content (idempotency fingerprints), so that no PAN reaches the store, even hashed.

Both are keyed MACs computed in the HSM (``hsm.tokens.HsmCardProtector``).
"""

from __future__ import annotations

from typing import Protocol


class CardProtector(Protocol):
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
