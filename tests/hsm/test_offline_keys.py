"""Offline keys in the HSM: generated inside, versioned, rotated; signatures verify in software
(what a terminal does) and the private key never leaves."""

from __future__ import annotations

import pytest
from pkcs11 import Attribute, ObjectClass

from hsm import offline
from payswitch.offline import ecdsa


@pytest.mark.asyncio
async def test_offline_key_signs_verifiable_and_rotates(hsm_pool) -> None:
    owner = "issuer-offline-test"
    v1 = await hsm_pool.run(offline.ensure, owner)
    assert v1 == await hsm_pool.run(offline.ensure, owner)
    pub1 = await hsm_pool.run(offline.public_key, owner, v1)
    digest = ecdsa.sha256(b"an allowance")
    sig = await hsm_pool.run(offline.sign_digest, owner, v1, digest)
    assert ecdsa.verify_digest(pub1, digest, sig)
    assert not ecdsa.verify_digest(pub1, ecdsa.sha256(b"another"), sig)

    v2 = await hsm_pool.run(offline.rotate, owner)
    assert v2 == v1 + 1
    keys = await hsm_pool.run(offline.public_keys, owner)
    assert set(keys) >= {v1, v2} and keys[v1] == pub1 and keys[v2] != pub1
    sig2 = await hsm_pool.run(offline.sign_digest, owner, v2, digest)
    assert ecdsa.verify_digest(keys[v2], digest, sig2)
    assert not ecdsa.verify_digest(pub1, digest, sig2)

    def private_attrs(session):
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=offline.label(owner, v1))
        return bool(key[Attribute.SENSITIVE]), bool(key[Attribute.EXTRACTABLE])

    assert await hsm_pool.run(private_attrs) == (True, False)
