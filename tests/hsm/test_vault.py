"""PAN vault: AES-GCM in the HSM, versioned keys, rotation, re-encryption, retirement.

The rotation tests rotate the session token's ``switch/vault`` family and leave it rotated; they
only assume versions relative to what they find.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hsm import vault
from hsm.errors import IntegrityError, KeyNotFound, KeyRetired

PAN = b"4111111111111111"


async def test_round_trip_and_layout(hsm_pool, hsm_keys):
    blob = await hsm_pool.run(vault.encrypt, PAN, b"token-1")
    assert blob[0] == vault.FORMAT
    assert len(blob) == vault.HEADER_LEN + len(PAN) + vault.TAG_LEN
    assert PAN not in blob
    assert await hsm_pool.run(vault.decrypt, blob, b"token-1") == PAN
    other = await hsm_pool.run(vault.encrypt, PAN, b"token-1")
    assert other != blob  # fresh IV each time


@pytest.mark.parametrize("where", [0, 1, 2, 5, vault.HEADER_LEN, -1])
async def test_tampering_fails_closed(hsm_pool, hsm_keys, where):
    blob = bytearray(await hsm_pool.run(vault.encrypt, PAN, b"t"))
    blob[where] ^= 0x01
    with pytest.raises((IntegrityError, KeyNotFound)) as err:
        await hsm_pool.run(vault.decrypt, bytes(blob), b"t")
    assert "4111" not in str(err.value)
    # the pool is still healthy afterwards
    assert await hsm_pool.healthy()


async def test_wrong_aad_and_garbage(hsm_pool, hsm_keys):
    blob = await hsm_pool.run(vault.encrypt, PAN, b"token-A")
    with pytest.raises(IntegrityError):
        await hsm_pool.run(vault.decrypt, blob, b"token-B")
    with pytest.raises(IntegrityError):
        await hsm_pool.run(vault.decrypt, b"\x01\x00", b"")


async def test_rotation_reencryption_and_retirement(hsm_pool, hsm_keys):
    v_before = await hsm_pool.run(vault.current_version)
    old = await hsm_pool.run(vault.encrypt, PAN, b"t")
    assert vault.blob_version(old) == v_before

    info = await hsm_pool.run(vault.rotate)
    v_new = v_before + 1
    assert info.label == f"switch/vault/v{v_new}" and info.created
    assert await hsm_pool.run(vault.current_version) == v_new
    new = await hsm_pool.run(vault.encrypt, PAN, b"t")
    assert vault.blob_version(new) == v_new
    # old blobs stay readable; the old key can no longer encrypt (the token enforces it)
    assert await hsm_pool.run(vault.decrypt, old, b"t") == PAN

    moved = await hsm_pool.run(vault.reencrypt, old, b"t")
    assert moved is not None and vault.blob_version(moved) == v_new
    assert await hsm_pool.run(vault.reencrypt, moved, b"t") is None
    batch = await hsm_pool.run(vault.reencrypt_many, [(old, b"t"), (new, b"t")])
    assert batch[1] is None and vault.blob_version(batch[0]) == v_new

    with pytest.raises(Exception, match="current version"):
        await hsm_pool.run(vault.retire, v_new)
    retired = await hsm_pool.run(vault.retire, v_before)
    assert retired.status == "retired"
    with pytest.raises(KeyRetired):
        await hsm_pool.run(vault.decrypt, old, b"t")
    assert await hsm_pool.run(vault.decrypt, moved, b"t") == PAN


def test_rotation_by_another_process_is_seen(hsm_config):
    """The ceremony CLI rotates the switch's vault key in its own process, on the switch's own
    token (not the unit tests' one); a pool of this process on that token picks it up."""
    from hsm import keys
    from hsm.pool import HsmPool

    switch_pool = HsmPool(hsm_config)
    switch_pool.run_sync(keys.ensure, [keys.KeySpec("switch", "vault")])
    v = switch_pool.run_sync(vault.current_version, refresh=True)
    env = dict(os.environ)  # the HSM home; the CLI reads the switch's PIN from its file
    out = subprocess.run(
        [sys.executable, "-m", "payswitch.ceremony", "rotate"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert f"switch/vault/v{v + 1}" in out.stdout
    assert switch_pool.run_sync(vault.current_version, refresh=True) == v + 1
    blob = switch_pool.run_sync(vault.encrypt, PAN, b"x")
    assert vault.blob_version(blob) == v + 1
    assert switch_pool.run_sync(vault.decrypt, blob, b"x") == PAN
    listed = subprocess.run(
        [sys.executable, "-m", "payswitch.ceremony", "list"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert f"switch/vault/v{v}" in listed and "decrypt-only" in listed
