"""Contract tests of offline claims (``Store.claim_offline_spend``) on every backend: the first
claim of a counter wins, a repeated claim of the same spend is SAME, another spend is a
CONFLICT naming the holder, even when racing from two store handles; cases are kept once;
upload marks only move forward."""

from __future__ import annotations

import asyncio
import hashlib
import secrets

from switch.domain.offline import ClaimOutcome, OfflineCase, OfflineClaim
from switch.store.base import Store


def _claim(allowance: str, counter: int, content: str, terminal: str = "T1") -> OfflineClaim:
    digest = hashlib.sha256(content.encode()).hexdigest()
    return OfflineClaim(allowance, counter, digest, terminal, 100, "0" * 64, 1.5)


async def test_first_claim_wins_and_repeats_are_same(store: Store) -> None:
    al = "al-" + secrets.token_hex(4)
    first = await store.claim_offline_spend(_claim(al, 1, "a"))
    assert first.outcome is ClaimOutcome.NEW
    again = await store.claim_offline_spend(_claim(al, 1, "a", terminal="T1"))
    assert again.outcome is ClaimOutcome.SAME
    clone = await store.claim_offline_spend(_claim(al, 1, "b", terminal="T2"))
    assert clone.outcome is ClaimOutcome.CONFLICT
    assert clone.holder == _claim(al, 1, "a")
    assert (await store.claim_offline_spend(_claim(al, 2, "c"))).outcome is ClaimOutcome.NEW
    assert [c.counter for c in await store.offline_claims(al)] == [1, 2]
    assert await store.offline_claims("al-none") == []


async def test_racing_claims_from_two_handles_one_winner(store: Store, open_more) -> None:
    other = await open_more()
    al = "al-" + secrets.token_hex(4)
    results = await asyncio.gather(
        *(
            (store if i % 2 else other).claim_offline_spend(_claim(al, 7, f"spend-{i}"))
            for i in range(6)
        )
    )
    outcomes = [r.outcome for r in results]
    assert outcomes.count(ClaimOutcome.NEW) == 1
    assert outcomes.count(ClaimOutcome.CONFLICT) == 5
    assert len({r.holder.digest for r in results}) == 1


async def test_cases_once_and_marks_forward(store: Store) -> None:
    case = OfflineCase(
        "case-" + secrets.token_hex(4), "al-1", 3, "a" * 64, "T1", ("duplicate_counter",),
        "cardholder", True, 250, "EUR", '{"first": "x"}', 2.0,
    )  # fmt: skip
    assert await store.record_offline_case(case) is True
    assert await store.record_offline_case(case) is False
    assert case in await store.offline_cases()
    t = "T-" + secrets.token_hex(3)
    assert await store.offline_upload_mark(t) == 0
    assert await store.advance_offline_upload_mark(t, 5) == 5
    assert await store.advance_offline_upload_mark(t, 3) == 5
    assert await store.advance_offline_upload_mark(t, 9) == 9
    assert await store.offline_upload_mark(t) == 9
