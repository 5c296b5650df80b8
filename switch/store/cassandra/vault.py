"""The PAN vault on Cassandra: one LWT-only row per card token digest.

``put`` inserts with ``IF NOT EXISTS`` and re-encrypts with ``UPDATE ... IF key_version < ?``,
so concurrent writers of one card always end on the newest key version and never go back.
Key versions only grow, so a version this process has seen is a safe lower bound: a put that
is not newer returns False without a round trip, and otherwise a plain read at the store's
consistency skips the LWT when the row is already as new (every authorization puts its card).
"""

from __future__ import annotations

import uuid

from switch.domain.errors import StoreUnavailable
from switch.domain.vault import VaultEntry
from switch.store.cassandra.exec import Cql, Row, backoff

ATTEMPTS = 16
CACHE = 100_000


def _entry(row: Row) -> VaultEntry:
    return VaultEntry(
        row["token_digest"],
        bytes(row["blob"] or b""),
        int(row["key_version"]),
        float(row["created_at"]),
        float(row["updated_at"]),
    )


class Vault:
    def __init__(self, cql: Cql) -> None:
        self._cql = cql
        self._versions: dict[str, int] = {}  # digest -> a version known to be stored

    def _saw(self, digest: str, version: int) -> None:
        if len(self._versions) >= CACHE:
            self._versions.clear()
        if version > self._versions.get(digest, 0):
            self._versions[digest] = version

    async def get(self, digest: str) -> VaultEntry | None:
        rows = await self._cql.run(self._cql.q.vault_get, (digest,))
        if not rows:
            return None
        entry = _entry(rows[0])
        self._saw(digest, entry.key_version)
        return entry

    async def put(self, digest: str, blob: bytes, version: int, now: float) -> bool:
        if self._versions.get(digest, 0) >= version:
            return False
        current = await self.get(digest)
        if current is not None and current.key_version >= version:
            return False
        async with self._cql.serialised("vault", digest):
            return await self._cql.shielded(self._put(digest, blob, version, now))

    async def _put(self, digest: str, blob: bytes, version: int, now: float) -> bool:
        q = self._cql.q
        for attempt in range(ATTEMPTS):
            await backoff(attempt)
            writer = uuid.uuid4()
            ok, row = await self._cql.lwt(q.vault_put, (digest, blob, version, now, now, writer))
            if ok is None:
                row = await self._cql.serial(q.vault_get, (digest,)) or {}
                if not row:
                    continue
                ok = row["writer"] == writer
            if ok:
                self._saw(digest, version)
                return True
            stored = int(row["key_version"])
            if stored >= version:
                self._saw(digest, stored)
                return False
            ok, _ = await self._cql.lwt(
                q.vault_renew, (blob, version, now, writer, digest, version)
            )
            if ok is None:
                row = await self._cql.serial(q.vault_get, (digest,)) or {}
                ok = row.get("writer") == writer
            if ok:
                self._saw(digest, version)
                return True
        raise StoreUnavailable(f"vault put: no decision after {ATTEMPTS} attempts")
