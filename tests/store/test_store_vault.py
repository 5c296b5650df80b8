"""Contract: the PAN vault (encrypted PAN per card token), on every backend.

The blobs here are opaque bytes: the store never looks inside (``hsm.vault`` makes real ones).
"""

from __future__ import annotations

import asyncio

import pytest
from storekit import NOW

from switch.store.base import Store

DIGEST = "ab" * 32
OTHER = "cd" * 32


async def test_missing_card_is_none(store: Store) -> None:
    assert await store.get_vault_entry(DIGEST) is None


async def test_put_then_get_round_trips(store: Store) -> None:
    blob = b"\x01\x00\x01" + bytes(range(60))
    assert await store.put_vault_entry(DIGEST, blob, 1, NOW)
    got = await store.get_vault_entry(DIGEST)
    assert got is not None
    assert (got.token_digest, got.blob, got.key_version) == (DIGEST, blob, 1)
    assert (got.created_at, got.updated_at) == (NOW, NOW)
    assert type(got.blob) is bytes and type(got.key_version) is int
    assert await store.get_vault_entry(OTHER) is None


async def test_same_version_changes_nothing(store: Store) -> None:
    assert await store.put_vault_entry(DIGEST, b"first", 1, NOW)
    assert not await store.put_vault_entry(DIGEST, b"second", 1, NOW + 5)
    got = await store.get_vault_entry(DIGEST)
    assert (got.blob, got.updated_at) == (b"first", NOW)


async def test_newer_version_replaces_older_never_the_reverse(store: Store) -> None:
    await store.put_vault_entry(DIGEST, b"v1", 1, NOW)
    assert await store.put_vault_entry(DIGEST, b"v2", 2, NOW + 10)
    got = await store.get_vault_entry(DIGEST)
    assert (got.blob, got.key_version, got.created_at, got.updated_at) == (
        b"v2",
        2,
        NOW,
        NOW + 10,
    )
    assert not await store.put_vault_entry(DIGEST, b"v1 again", 1, NOW + 20)
    assert (await store.get_vault_entry(DIGEST)).blob == b"v2"


async def test_concurrent_writers_of_one_card_end_on_the_newest(store: Store, open_more) -> None:
    other = await open_more()
    writes = [
        s.put_vault_entry(DIGEST, f"v{v}".encode(), v, NOW + v)
        for v in (1, 3, 2, 3, 1, 2)
        for s in (store, other)
    ]
    await asyncio.gather(*writes)
    got = await other.get_vault_entry(DIGEST)
    assert (got.blob, got.key_version) == (b"v3", 3)


@pytest.mark.parametrize("version", [0, -1])
async def test_version_must_be_positive(store: Store, version: int) -> None:
    with pytest.raises(ValueError):
        await store.put_vault_entry(DIGEST, b"x", version, NOW)
    assert await store.get_vault_entry(DIGEST) is None
