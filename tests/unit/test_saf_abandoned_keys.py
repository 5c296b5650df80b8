"""Idempotency keys left IN_FLIGHT by a dead request (real SQLite store): an authorization key
without a transaction is completed with 96 once abandoned, so retries stop waiting; a key with
a transaction is left to the recovery sweep (which answers 91); a young key still waits."""

import time

import grpc
import pytest

from payswitch.v1 import common_pb2, terminal_pb2
from switch.budget import Budget
from switch.errors import ApiError
from switch.idempotency import IdempotencyGuard
from switch.store.base import IdemStatus
from switch.store.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path):
    s = SqliteStore(tmp_path / "switch.db", synchronous="normal")
    await s.open()
    yield s
    await s.close()


async def _claim(store, key, operation="authorize", age_s=0.0):
    claim = await store.claim_idempotency("T-1", key, operation, "fp", 86400, time.time() - age_s)
    assert claim.claimed


def _budget(seconds=0.3):
    return Budget.start(seconds, 2.0, 0.05)


async def test_abandoned_authorization_key_is_answered_96_for_every_retry(store):
    await _claim(store, "k1", age_s=120)
    guard = IdempotencyGuard(store, abandoned_after_s=60)
    first = await guard.claim("T-1", "k1", "authorize", "fp", _budget())
    again = await IdempotencyGuard(store).claim("T-1", "k1", "authorize", "fp", _budget())
    assert first is not None and again is not None
    answer = terminal_pb2.AuthorizeResponse.FromString(first.response)
    assert answer.response_code == common_pb2.RESPONSE_CODE_SYSTEM_MALFUNCTION
    assert again.response == first.response
    record = await store.get_idempotency("T-1", "k1", time.time())
    assert record.status is IdemStatus.COMPLETED


async def _aborted(guard, key, operation="authorize"):
    with pytest.raises(ApiError) as err:
        await guard.claim("T-1", key, operation, "fp", _budget())
    assert err.value.code == grpc.StatusCode.ABORTED


async def test_young_or_attached_or_other_keys_still_wait(store):
    guard = IdempotencyGuard(store, abandoned_after_s=60)
    await _claim(store, "young", age_s=5)
    await _aborted(guard, "young")
    await _claim(store, "attached", age_s=120)
    await store.attach_transaction("T-1", "attached", "tx-1")  # recovery answers this one
    await _aborted(guard, "attached")
    await _claim(store, "void", operation="void", age_s=120)
    await _aborted(guard, "void", operation="void")
    for key in ("young", "attached", "void"):
        record = await store.get_idempotency("T-1", key, time.time())
        assert record.status is IdemStatus.IN_FLIGHT
