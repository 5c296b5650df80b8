"""Contract: risk counters add up per bucket and are shared by every connection (as several
switch processes would be), sightings remember the last time, decisions round-trip; malformed
input is refused and writes nothing."""

import asyncio

import pytest

from switch.domain.risk import (
    HOUR,
    MINUTE,
    Observation,
    RiskRecord,
    RiskReview,
    Sighting,
    Tally,
)

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
CARD = "c:" + "a" * 64


def _sum(history, subject, gran, metric):
    return sum(b.value for b in history.buckets[subject] if b.gran == gran and b.metric == metric)


def _obs(amount=100, subject=CARD, sightings=()):
    return Observation(
        subjects=(subject,),
        seen_of=(subject,),
        tallies=(Tally(subject, "n", 1), Tally(subject, "amt.EUR", amount)),
        sightings=tuple(sightings),
    )


async def test_an_observation_sees_what_came_before_it_then_adds(store):
    first = await store.risk_observe(_obs(100), NOW)
    assert first.buckets[CARD] == [] and first.seen[CARD] == []
    second = await store.risk_observe(_obs(250), NOW + 1)
    for gran in (MINUTE, HOUR):
        assert _sum(second, CARD, gran, "n") == 1
        assert _sum(second, CARD, gran, "amt.EUR") == 100
    third = await store.risk_observe(_obs(5), NOW + 2)
    assert _sum(third, CARD, MINUTE, "n") == 2
    assert _sum(third, CARD, HOUR, "amt.EUR") == 350


async def test_buckets_are_per_minute_and_hour_and_old_ones_are_not_read(store):
    await store.risk_observe(_obs(1), NOW)
    later = await store.risk_observe(_obs(1), NOW + 120)  # two minutes later
    minutes = sorted(b.start for b in later.buckets[CARD] if b.gran == MINUTE and b.metric == "n")
    assert minutes == [int(NOW) // 60 * 60]
    day_later = await store.risk_observe(_obs(1), NOW + 2 * 86400)
    assert day_later.buckets[CARD] == []  # past the hour and the day: nothing read back


async def test_subjects_are_separate(store):
    other = "c:" + "b" * 64
    await store.risk_observe(_obs(100), NOW)
    seen = await store.risk_observe(_obs(100, subject=other), NOW)
    assert seen.buckets[other] == []


async def test_velocity_is_shared_by_every_connection(store, open_more):
    stores = [store, await open_more(), await open_more()]
    await asyncio.gather(*(stores[i % 3].risk_observe(_obs(10), NOW) for i in range(12)))
    after = await stores[1].risk_observe(_obs(10), NOW + 1)
    assert _sum(after, CARD, MINUTE, "n") == 12  # no increment lost to a race
    assert _sum(after, CARD, HOUR, "amt.EUR") == 120


async def test_outcomes_are_added_later(store):
    await store.risk_observe(_obs(10), NOW)
    await store.risk_add([Tally(CARD, "decl", 1), Tally(CARD, "decl", 1)], NOW + 5)
    after = await store.risk_observe(_obs(10), NOW + 6)
    assert _sum(after, CARD, MINUTE, "decl") == 2


async def test_sightings_keep_the_last_time(store):
    see = [Sighting(CARD, "country", "DE", 86400), Sighting(CARD, "terminal", "T-0001", 86400)]
    await store.risk_observe(_obs(sightings=see), NOW)
    await store.risk_observe(_obs(sightings=see[:1]), NOW + 10)
    after = await store.risk_observe(_obs(), NOW + 20)
    got = {(s.kind, s.value): s.at for s in after.seen[CARD]}
    assert got == {("country", "DE"): NOW + 10, ("terminal", "T-0001"): NOW}


async def test_decisions_round_trip(store, open_more):
    record = RiskRecord(
        tx_id="f" * 32,
        action="decline",
        score=90,
        rules_version="rules-v1",
        reasons=("card_testing", "card_velocity"),
        code="59",
        created_at=NOW,
        shadow_version="rules-v2",
        shadow_action="approve",
    )
    assert await store.get_risk_decision(record.tx_id) is None
    await store.put_risk_decision(record)
    other = await open_more()
    assert await other.get_risk_decision(record.tx_id) == record


@pytest.mark.parametrize(
    "obs",
    [
        Observation((CARD,), (), (Tally(CARD, "n", -1),)),
        Observation((CARD,), (), (Tally(CARD, "n", True),)),
        Observation((CARD,), (), (Tally(CARD, "bad metric", 1),)),
        Observation(("",), ()),
        Observation((CARD,), (), (), (Sighting(CARD, "k", "v", 0),)),
    ],
)
async def test_malformed_input_is_refused_and_writes_nothing(store, obs):
    with pytest.raises(ValueError):
        await store.risk_observe(obs, NOW)
    after = await store.risk_observe(Observation((CARD,), (CARD,)), NOW + 1)
    assert after.buckets[CARD] == [] and after.seen[CARD] == []


async def test_a_malformed_decision_is_refused(store):
    bad = RiskRecord("t", "maybe", 0, "v1", (), "", NOW)
    with pytest.raises(ValueError):
        await store.put_risk_decision(bad)
    with pytest.raises(ValueError):
        await store.put_risk_decision(RiskRecord("t", "approve", 0, "v1", ("a,b",), "", NOW))


def _review(tx: str, at: float, token: str = "a" * 64) -> RiskReview:
    return RiskReview(tx, token, 65, ("spree", "amount_spike"), at)


async def test_reviews_queue_oldest_first_and_resolve_once(store, open_more):
    other = await open_more()
    await store.put_risk_review(_review("t2", NOW + 1, "b" * 64))
    await store.put_risk_review(_review("t1", NOW))
    await store.put_risk_review(_review("t1", NOW))  # idempotent
    assert [r.tx_id for r in await other.risk_reviews(10)] == ["t1", "t2"]
    assert [r.tx_id for r in await store.risk_reviews(1)] == ["t1"]
    review, listed = await other.resolve_risk_review("t1", "fraud", NOW + 5)
    assert review == _review("t1", NOW)
    assert (listed.card_token, listed.list) == ("a" * 64, "block")
    assert await store.resolve_risk_review("t1", "false_positive", NOW + 6) is None  # once
    _, allowed = await store.resolve_risk_review("t2", "false_positive", NOW + 7)
    assert allowed.list == "allow"
    assert await store.risk_reviews(10) == []
    listed_now = {(c.card_token, c.list) for c in await other.risk_listed()}
    assert listed_now == {("a" * 64, "block"), ("b" * 64, "allow")}


async def test_an_unknown_verdict_or_review_changes_nothing(store):
    await store.put_risk_review(_review("t1", NOW))
    with pytest.raises(ValueError):
        await store.resolve_risk_review("t1", "maybe", NOW)
    assert await store.resolve_risk_review("nope", "fraud", NOW) is None
    assert [r.tx_id for r in await store.risk_reviews(10)] == ["t1"]
    assert await store.risk_listed() == []
