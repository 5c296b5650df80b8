"""The PAN vault's records: a card's PAN, sealed in the HSM, kept by its token."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class VaultEntry:
    """One card's PAN as the vault keeps it: encrypted in the HSM, never in clear.

    ``token_digest`` is the card's token (``hsm.tokens.Token.digest``, the full HMAC-SHA256 of
    the PAN in hex: unique per card, the ``card_token`` of its transactions). ``blob`` is an
    ``hsm.vault`` AES-GCM blob whose additional data is the token digest, so a blob cannot be
    moved to another card's row; ``key_version`` is the vault key version it was sealed under
    (also inside the blob's header), kept as a column so a re-encryption job can find old ones.
    """

    token_digest: str
    blob: bytes
    key_version: int
    created_at: float
    updated_at: float

    def __repr__(self) -> str:  # the blob is ciphertext, but keep reprs short and boring
        return f"VaultEntry({self.token_digest[:12]}..., v{self.key_version})"


@dataclass(frozen=True, slots=True)
class VaultWrite:
    """A card's sealed PAN to keep (the arguments of ``put_vault_entry`` without the clock)."""

    token_digest: str
    blob: bytes
    key_version: int

    def __repr__(self) -> str:
        return f"VaultWrite({self.token_digest[:12]}..., v{self.key_version})"


def check_vault_entry(token_digest: str, key_version: int) -> None:
    """Validate a vault write before any backend runs it (both backends share this)."""
    if not token_digest:
        raise ValueError("put_vault_entry: token_digest is required")
    if not isinstance(key_version, int) or isinstance(key_version, bool) or key_version < 1:
        raise ValueError("put_vault_entry: key_version must be a positive int")
