"""The PAN vault on Cassandra: one row per card token digest, written by plain writes.

An entry is a pure function of the card and the key version (the same PAN sealed under the
same vault key; two blobs of one version decrypt to the same PAN), so it needs no Paxos
(issue 19): every write is ``USING TIMESTAMP key_version * 2**52`` (above any wall-clock
microsecond timestamp until the year 2112, the LWT-written rows of before 017 included), so a
newer key version always wins and a concurrent writer of an older one can never take the row
back; two writers of one version converge on one of their blobs. Key versions only grow, so a
version this process has seen is a safe lower bound: a put that is not newer returns False
without a round trip, and otherwise a plain read at the store's consistency skips the write
when the row is already as new (every authorization puts its card).
"""

from __future__ import annotations

import uuid

from switch.domain.vault import VaultEntry
from switch.store.cassandra.exec import Cql, Row

VERSION_STAMP = 2**52  # write timestamp per key version (see the module doc)
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
            if self._versions.get(digest, 0) >= version:
                return False  # written meanwhile by a caller of this process
            created = current.created_at if current is not None else now
            return await self._cql.shielded(self._put(digest, blob, version, created, now))

    async def _put(
        self, digest: str, blob: bytes, version: int, created: float, now: float
    ) -> bool:
        q = self._cql.q
        stamp = version * VERSION_STAMP
        await self._cql.run(
            q.vault_write, (digest, blob, version, created, now, uuid.uuid4(), stamp)
        )
        self._saw(digest, version)
        return True
