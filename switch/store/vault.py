"""The PAN vault in the store: HSM-sealed PANs by card token, never a PAN in clear."""

from __future__ import annotations

import abc

from switch.domain.vault import VaultEntry


class VaultStore(abc.ABC):
    """Each card's PAN, sealed by the HSM (``hsm.vault``), kept once by its token."""

    # --- PAN vault ----------------------------------------------------------------------
    # Not abstract, so that a backend under construction still loads; until it implements
    # these, every authorization through it fails closed (96) at the vault stage.
    @abc.abstractmethod
    async def put_vault_entry(
        self, token_digest: str, blob: bytes, key_version: int, now: float
    ) -> bool:
        """Keep a card's encrypted PAN so that settlement can recover it by the card's token.

        Inserts when the card has no entry. Replaces an entry only with a strictly newer
        ``key_version`` (lazy re-encryption after a vault key rotation: ``created_at`` stays,
        ``updated_at`` = ``now``); the same or an older version changes nothing, so concurrent
        writers of one card can never move it back to an older key. True when written.
        Arguments are validated by ``check_vault_entry`` first (ValueError).
        """

    @abc.abstractmethod
    async def get_vault_entry(self, token_digest: str) -> VaultEntry | None:
        """The card's vault entry, or None."""
