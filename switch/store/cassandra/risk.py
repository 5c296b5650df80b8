"""Risk counters, sightings and decisions on Cassandra (``cql/010_risk.cql``).

An observation reads every subject's buckets (one query per subject and granularity: its
partitions of today and yesterday, ``day IN (?, ?)``) and sightings concurrently, then writes:
the counter increments as one COUNTER batch, the sightings as plain writes with their TTL.
Counter increments are not idempotent, so they run on the profile without driver retries: a
timed-out increment may be lost or applied (velocity under-counts by one at worst; it never
blocks the request, whose risk stage falls back within its slice).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from cassandra.query import BatchStatement, BatchType

from switch.domain.errors import StoreUnavailable
from switch.domain.risk import (
    SPANS,
    Bucket,
    History,
    ListedCard,
    Observation,
    RiskRecord,
    RiskReview,
    Seen,
    Tally,
    bucket_start,
    check_observation,
    check_record,
    check_review,
    check_tallies,
    check_verdict,
    since,
)
from switch.store.cassandra.exec import LWT, Cql
from switch.store.cassandra.host import CassandraHost
from switch.store.risk import RiskStore

DAY = 86400

_CQL = {
    "buckets": (
        "SELECT start, metric, value FROM risk_counters"
        " WHERE subject = ? AND gran = ? AND day IN (?, ?) AND start > ?"
    ),
    "add": (
        "UPDATE risk_counters SET value = value + ?"
        " WHERE subject = ? AND gran = ? AND day = ? AND start = ? AND metric = ?"
    ),
    "seen": "SELECT kind, value, at FROM risk_seen WHERE subject = ?",
    "see": "INSERT INTO risk_seen (subject, kind, value, at) VALUES (?, ?, ?, ?) USING TTL ?",
    "put": (
        "INSERT INTO risk_decisions (tx_id, action, score, rules_version, reasons, code,"
        " created_at, shadow_version, shadow_action) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    "get": (
        "SELECT tx_id, action, score, rules_version, reasons, code, created_at,"
        " shadow_version, shadow_action FROM risk_decisions WHERE tx_id = ?"
    ),
    "review": (
        "INSERT INTO risk_reviews (bucket, tx_id, card_token, score, reasons, created_at)"
        " VALUES (0, ?, ?, ?, ?, ?)"
    ),
    "reviews": (
        "SELECT tx_id, card_token, score, reasons, created_at FROM risk_reviews WHERE bucket = 0"
    ),
    "review_of": (
        "SELECT tx_id, card_token, score, reasons, created_at FROM risk_reviews"
        " WHERE bucket = 0 AND tx_id = ?"
    ),
    "resolve": "DELETE FROM risk_reviews WHERE bucket = 0 AND tx_id = ? IF EXISTS",
    "list": "INSERT INTO risk_lists (bucket, card_token, list, reason, at) VALUES (0, ?, ?, ?, ?)",
    "listed": "SELECT card_token, list, reason, at FROM risk_lists WHERE bucket = 0",
}


def _review(r: dict[str, Any]) -> RiskReview:
    return RiskReview(
        tx_id=str(r["tx_id"]),
        card_token=str(r["card_token"]),
        score=int(r["score"] or 0),
        reasons=tuple(r["reasons"] or ()),
        created_at=float(r["created_at"] or 0.0),
    )


class CassandraRisk(CassandraHost, RiskStore):
    """Mixin for ``CassandraStore``; statements prepared on first use, off the event loop."""

    async def _risk_cql(self) -> tuple[Cql, dict[str, Any]]:
        return await self._prepared("risk", _CQL)

    async def risk_observe(self, obs: Observation, now: float) -> History:
        check_observation(obs)
        cql, q = await self._risk_cql()
        reads: list[Any] = []
        for subject in obs.subjects:
            for gran in SPANS:
                first = since(now, gran)
                days = (max(first, 0) // DAY, bucket_start(now, gran) // DAY)
                reads.append(cql.run(q["buckets"], (subject, gran, *days, first)))
        for subject in obs.seen_of:
            reads.append(cql.run(q["seen"], (subject,)))
        rows = await asyncio.gather(*reads)
        history = History()
        i = 0
        for subject in obs.subjects:
            found: list[Bucket] = []
            for gran in SPANS:
                found.extend(
                    Bucket(gran, int(r["start"]), str(r["metric"]), int(r["value"] or 0))
                    for r in rows[i]
                )
                i += 1
            history.buckets[subject] = found
        for subject in obs.seen_of:
            history.seen[subject] = [
                Seen(str(r["kind"]), str(r["value"]), float(r["at"] or 0.0)) for r in rows[i]
            ]
            i += 1
        writes: list[Any] = [self._increment(cql, q, obs.tallies, now)]
        writes.extend(
            cql.run(q["see"], (s.subject, s.kind, s.value, now, s.ttl_s)) for s in obs.sightings
        )
        await asyncio.gather(*writes)
        return history

    @staticmethod
    async def _increment(cql: Cql, q: dict[str, Any], tallies: Sequence[Tally], now: float) -> None:
        if not tallies:
            return
        batch = BatchStatement(batch_type=BatchType.COUNTER)
        for t in tallies:
            for gran in SPANS:
                start = bucket_start(now, gran)
                batch.add(q["add"], (t.value, t.subject, gran, start // DAY, start, t.metric))
        await cql.run(batch, None, LWT)  # no driver retry: an increment is not idempotent

    async def risk_add(self, tallies: Sequence[Tally], now: float) -> None:
        check_tallies(tallies)
        cql, q = await self._risk_cql()
        await self._increment(cql, q, tuple(tallies), now)

    async def put_risk_decision(self, record: RiskRecord) -> None:
        check_record(record)
        cql, q = await self._risk_cql()
        r = record
        await cql.run(
            q["put"],
            (
                r.tx_id,
                r.action,
                r.score,
                r.rules_version,
                list(r.reasons),
                r.code,
                r.created_at,
                r.shadow_version,
                r.shadow_action,
            ),
        )

    async def get_risk_decision(self, tx_id: str) -> RiskRecord | None:
        cql, q = await self._risk_cql()
        rows = await cql.run(q["get"], (tx_id,))
        if not rows:
            return None
        r = rows[0]
        return RiskRecord(
            tx_id=str(r["tx_id"]),
            action=str(r["action"]),
            score=int(r["score"] or 0),
            rules_version=str(r["rules_version"]),
            reasons=tuple(r["reasons"] or ()),
            code=str(r["code"] or ""),
            created_at=float(r["created_at"] or 0.0),
            shadow_version=str(r["shadow_version"] or ""),
            shadow_action=str(r["shadow_action"] or ""),
        )

    async def put_risk_review(self, review: RiskReview) -> None:
        check_review(review)
        cql, q = await self._risk_cql()
        r = review
        await cql.run(q["review"], (r.tx_id, r.card_token, r.score, list(r.reasons), r.created_at))

    async def risk_reviews(self, limit: int) -> list[RiskReview]:
        cql, q = await self._risk_cql()
        rows = await cql.run(q["reviews"], ())
        reviews = sorted((_review(r) for r in rows), key=lambda v: (v.created_at, v.tx_id))
        return reviews[:limit]

    async def resolve_risk_review(
        self, tx_id: str, verdict: str, now: float
    ) -> tuple[RiskReview, ListedCard] | None:
        listed = check_verdict(verdict)
        cql, q = await self._risk_cql()
        rows = await cql.run(q["review_of"], (tx_id,))
        if not rows:
            return None
        review = _review(rows[0])
        applied, _ = await cql.lwt(q["resolve"], (tx_id,))
        if applied is None:  # unknown: the operator retries; an applied delete then says None
            raise StoreUnavailable("risk review: outcome of the resolution unknown")
        if not applied:
            return None  # another operator's verdict came first
        entry = ListedCard(review.card_token, listed, f"{verdict} {tx_id}", now)
        await cql.run(q["list"], (entry.card_token, entry.list, entry.reason, entry.at))
        return review, entry

    async def risk_listed(self) -> list[ListedCard]:
        cql, q = await self._risk_cql()
        rows = await cql.run(q["listed"], ())
        return [
            ListedCard(str(r["card_token"]), str(r["list"]), str(r["reason"]), float(r["at"]))
            for r in rows
        ]
