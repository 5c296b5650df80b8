"""Risk counters, sightings and decisions on SQLite.

One observation is one write transaction on the store thread: the reads, then an upsert per
(subject, granularity, bucket, metric) that adds to the value (atomic against every other
connection: SQLite serialises writers), then the sightings. Buckets older than their span and
expired sightings are deleted a batch at a time every ``PURGE_EVERY`` observations, by the
indexes on their age, so the tables stay bounded without a janitor.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from switch.domain.risk import (
    SPANS,
    Bucket,
    History,
    ListedCard,
    Observation,
    Observing,
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
from switch.store.risk import RiskStore
from switch.store.sqlite.host import SqliteHost

PURGE_EVERY = 256
PURGE_BATCH = 512

SCHEMA = """
CREATE TABLE IF NOT EXISTS risk_counters (
    subject TEXT NOT NULL,
    gran INTEGER NOT NULL,
    start INTEGER NOT NULL,
    metric TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (subject, gran, start, metric)
);
CREATE INDEX IF NOT EXISTS risk_counters_by_age ON risk_counters (gran, start);
CREATE TABLE IF NOT EXISTS risk_seen (
    subject TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    at REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (subject, kind, value)
);
CREATE INDEX IF NOT EXISTS risk_seen_by_expiry ON risk_seen (expires_at);
CREATE TABLE IF NOT EXISTS risk_decisions (
    tx_id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    score INTEGER NOT NULL,
    rules_version TEXT NOT NULL,
    reasons TEXT NOT NULL,
    code TEXT NOT NULL,
    created_at REAL NOT NULL,
    shadow_version TEXT NOT NULL,
    shadow_action TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS risk_reviews (
    tx_id TEXT PRIMARY KEY,
    card_token TEXT NOT NULL,
    score INTEGER NOT NULL,
    reasons TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS risk_reviews_by_age ON risk_reviews (created_at);
CREATE TABLE IF NOT EXISTS risk_lists (
    card_token TEXT PRIMARY KEY,
    list TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
"""

_ADD = (
    "INSERT INTO risk_counters (subject, gran, start, metric, value) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (subject, gran, start, metric) DO UPDATE SET value = value + excluded.value"
)
_SEE = (
    "INSERT INTO risk_seen (subject, kind, value, at, expires_at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (subject, kind, value) DO UPDATE"
    " SET at = excluded.at, expires_at = excluded.expires_at"
)
_DECISION_COLUMNS = (
    "tx_id, action, score, rules_version, reasons, code, created_at, shadow_version, shadow_action"
)


def _add(c: sqlite3.Connection, tallies: Sequence[Tally], now: float) -> None:
    rows = [
        (t.subject, gran, bucket_start(now, gran), t.metric, t.value)
        for t in tallies
        for gran in SPANS
    ]
    c.executemany(_ADD, rows)


def _read(c: sqlite3.Connection, obs: Observation, now: float) -> History:
    history = History()
    for subject in obs.subjects:
        found: list[Bucket] = []
        for gran in SPANS:
            rows = c.execute(
                "SELECT start, metric, value FROM risk_counters"
                " WHERE subject = ? AND gran = ? AND start > ?",
                (subject, gran, since(now, gran)),
            ).fetchall()
            found.extend(Bucket(gran, int(s), str(m), int(v)) for s, m, v in rows)
        history.buckets[subject] = found
    for subject in obs.seen_of:
        rows = c.execute(
            "SELECT kind, value, at FROM risk_seen WHERE subject = ? AND expires_at > ?",
            (subject, now),
        ).fetchall()
        history.seen[subject] = [Seen(str(k), str(v), float(at)) for k, v, at in rows]
    return history


def _purge(c: sqlite3.Connection, now: float) -> None:
    for gran in SPANS:
        c.execute(
            "DELETE FROM risk_counters WHERE rowid IN (SELECT rowid FROM risk_counters"
            " WHERE gran = ? AND start <= ? LIMIT ?)",
            (gran, since(now, gran), PURGE_BATCH),
        )
    c.execute(
        "DELETE FROM risk_seen WHERE rowid IN (SELECT rowid FROM risk_seen"
        " WHERE expires_at <= ? LIMIT ?)",
        (now, PURGE_BATCH),
    )


class SqliteRisk(SqliteHost, RiskStore):
    """Mixin for ``SqliteStore`` (uses its ``_call`` and ``_write``)."""

    _risk_observations = 0

    async def risk_observe(self, obs: Observation, now: float) -> History:
        check_observation(obs)
        return await self._call_grouped(self._risk_observe, obs, now)

    def _risk_observe(self, conn: sqlite3.Connection, obs: Observation, now: float) -> History:
        return self._write(conn, lambda c: self._observe_in(c, obs, now))

    def _observe_in(self, c: sqlite3.Connection, obs: Observation, now: float) -> History:
        """The observation's reads and writes inside the caller's transaction."""
        self._risk_observations += 1
        history = _read(c, obs, now)
        _add(c, obs.tallies, now)
        c.executemany(
            _SEE,
            [(s.subject, s.kind, s.value, now, now + s.ttl_s) for s in obs.sightings],
        )
        if self._risk_observations % PURGE_EVERY == 0:
            _purge(c, now)
        return history

    def _observe_for_intent(self, c: sqlite3.Connection, risk: Observing, now: float) -> None:
        """An intent's observation inside the intent's transaction, under a savepoint of its
        own: a failure of the risk tables rolls back the observation alone (``risk.failed``),
        never the intent. No slice here: it shares the intent's one commit."""
        c.execute("SAVEPOINT risk")
        try:
            risk.history = self._observe_in(c, risk.observation, now)
        except sqlite3.Error as exc:
            c.execute("ROLLBACK TO risk")
            risk.failed, risk.error = "store", type(exc).__name__
        c.execute("RELEASE risk")

    async def risk_add(self, tallies: Sequence[Tally], now: float) -> None:
        check_tallies(tallies)
        await self._call_grouped(self._risk_add, tuple(tallies), now)

    def _risk_add(self, conn: sqlite3.Connection, tallies: Sequence[Tally], now: float) -> None:
        self._write(conn, lambda c: _add(c, tallies, now))

    async def put_risk_decision(self, record: RiskRecord) -> None:
        check_record(record)
        await self._call_grouped(self._put_decision, record)

    def _put_decision(self, conn: sqlite3.Connection, r: RiskRecord) -> None:
        values = (
            r.tx_id,
            r.action,
            r.score,
            r.rules_version,
            ",".join(r.reasons),
            r.code,
            r.created_at,
            r.shadow_version,
            r.shadow_action,
        )

        def body(c: sqlite3.Connection) -> None:
            c.execute(
                f"INSERT OR REPLACE INTO risk_decisions ({_DECISION_COLUMNS})"  # noqa: S608
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )

        self._write(conn, body)

    async def get_risk_decision(self, tx_id: str) -> RiskRecord | None:
        return await self._call(self._get_decision, tx_id)

    @staticmethod
    def _get_decision(conn: sqlite3.Connection, tx_id: str) -> RiskRecord | None:
        row = conn.execute(
            f"SELECT {_DECISION_COLUMNS} FROM risk_decisions WHERE tx_id = ?",  # noqa: S608
            (tx_id,),
        ).fetchone()
        if row is None:
            return None
        tx, action, score, version, reasons, code, at, shadow_version, shadow_action = row
        return RiskRecord(
            tx_id=str(tx),
            action=str(action),
            score=int(score),
            rules_version=str(version),
            reasons=tuple(r for r in str(reasons).split(",") if r),
            code=str(code),
            created_at=float(at),
            shadow_version=str(shadow_version),
            shadow_action=str(shadow_action),
        )

    async def put_risk_review(self, review: RiskReview) -> None:
        check_review(review)
        await self._call(self._put_review, review)

    def _put_review(self, conn: sqlite3.Connection, r: RiskReview) -> None:
        def body(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT OR IGNORE INTO risk_reviews (tx_id, card_token, score, reasons,"
                " created_at) VALUES (?, ?, ?, ?, ?)",
                (r.tx_id, r.card_token, r.score, ",".join(r.reasons), r.created_at),
            )

        self._write(conn, body)

    async def risk_reviews(self, limit: int) -> list[RiskReview]:
        return await self._call(self._reviews, limit)

    @staticmethod
    def _reviews(conn: sqlite3.Connection, limit: int) -> list[RiskReview]:
        rows = conn.execute(
            "SELECT tx_id, card_token, score, reasons, created_at FROM risk_reviews"
            " ORDER BY created_at, tx_id LIMIT ?",
            (limit,),
        ).fetchall()
        return [_review(row) for row in rows]

    async def resolve_risk_review(
        self, tx_id: str, verdict: str, now: float
    ) -> tuple[RiskReview, ListedCard] | None:
        listed = check_verdict(verdict)
        return await self._call(self._resolve, tx_id, verdict, listed, now)

    def _resolve(
        self, conn: sqlite3.Connection, tx_id: str, verdict: str, listed: str, now: float
    ) -> tuple[RiskReview, ListedCard] | None:
        def body(c: sqlite3.Connection) -> tuple[RiskReview, ListedCard] | None:
            row = c.execute(
                "DELETE FROM risk_reviews WHERE tx_id = ?"
                " RETURNING tx_id, card_token, score, reasons, created_at",
                (tx_id,),
            ).fetchone()
            if row is None:
                return None
            review = _review(row)
            entry = ListedCard(review.card_token, listed, f"{verdict} {tx_id}", now)
            c.execute(
                "INSERT OR REPLACE INTO risk_lists (card_token, list, reason, at)"
                " VALUES (?, ?, ?, ?)",
                (entry.card_token, entry.list, entry.reason, entry.at),
            )
            return review, entry

        return self._write(conn, body)

    async def risk_listed(self) -> list[ListedCard]:
        return await self._call(self._listed)

    @staticmethod
    def _listed(conn: sqlite3.Connection) -> list[ListedCard]:
        rows = conn.execute(
            "SELECT card_token, list, reason, at FROM risk_lists ORDER BY card_token"
        ).fetchall()
        return [ListedCard(str(t), str(li), str(r), float(at)) for t, li, r, at in rows]


def _review(row: tuple[object, ...]) -> RiskReview:
    tx, token, score, reasons, at = row
    return RiskReview(
        tx_id=str(tx),
        card_token=str(token),
        score=int(str(score)),
        reasons=tuple(r for r in str(reasons).split(",") if r),
        created_at=float(str(at)),
    )
