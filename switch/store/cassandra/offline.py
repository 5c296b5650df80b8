"""Offline claims, cases and upload marks on Cassandra (``cql/012_offline.cql``).

Claims and cases are ``INSERT ... IF NOT EXISTS``: first writer wins across processes. A claim
whose outcome is unknown (a CAS timeout) is settled by reading the row at SERIAL: it is ours
exactly when it holds our digest. The upload mark moves by compare-and-set on the value read.
"""

from __future__ import annotations

from typing import Any

from switch.domain.errors import StoreUnavailable
from switch.domain.offline import Claimed, ClaimOutcome, OfflineCase, OfflineClaim
from switch.store.cassandra.exec import SERIAL, Cql, Row
from switch.store.cassandra.host import CassandraHost
from switch.store.offline import OfflineStore

_BUCKET = 0
_ATTEMPTS = 8
_CLAIM_COLS = "allowance_id, counter, digest, terminal_id, amount, prev_hash, claimed_at"
_CASE_COLS = (
    "case_id, allowance_id, counter, digest, terminal_id, problems, liability, paid, amount, "
    "currency, evidence, created_at"
)
_CQL = {
    "claim": f"INSERT INTO offline_claims ({_CLAIM_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?) "  # noqa: S608
    "IF NOT EXISTS",
    "get": f"SELECT {_CLAIM_COLS} FROM offline_claims WHERE allowance_id = ? AND counter = ?",  # noqa: S608
    "list": f"SELECT {_CLAIM_COLS} FROM offline_claims WHERE allowance_id = ?",  # noqa: S608
    "case": f"INSERT INTO offline_cases (bucket, {_CASE_COLS}) "  # noqa: S608
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",
    "cases": f"SELECT {_CASE_COLS} FROM offline_cases WHERE bucket = ?",  # noqa: S608
    "mark": "SELECT seq FROM offline_uploads WHERE terminal_id = ?",
    "mark_new": "INSERT INTO offline_uploads (terminal_id, seq) VALUES (?, ?) IF NOT EXISTS",
    "mark_move": "UPDATE offline_uploads SET seq = ? WHERE terminal_id = ? IF seq = ?",
}


def _claim(r: Row) -> OfflineClaim:
    return OfflineClaim(
        str(r["allowance_id"]), int(r["counter"]), str(r["digest"]), str(r["terminal_id"]),
        int(r["amount"]), str(r["prev_hash"]), float(r["claimed_at"] or 0.0),
    )  # fmt: skip


def _case(r: Row) -> OfflineCase:
    return OfflineCase(
        str(r["case_id"]), str(r["allowance_id"]), int(r["counter"]), str(r["digest"]),
        str(r["terminal_id"]), tuple(str(r["problems"]).split(",")), str(r["liability"]),
        bool(r["paid"]), int(r["amount"]), str(r["currency"]), str(r["evidence"]),
        float(r["created_at"] or 0.0),
    )  # fmt: skip


class CassandraOffline(CassandraHost, OfflineStore):
    """Mixin for ``CassandraStore``; statements prepared on first use, off the event loop."""

    async def _offline_cql(self) -> tuple[Cql, dict[str, Any]]:
        return await self._prepared("offline", _CQL)

    async def claim_offline_spend(self, claim: OfflineClaim) -> Claimed:
        cql, q = await self._offline_cql()
        row = (
            claim.allowance_id, claim.counter, claim.digest, claim.terminal_id, claim.amount,
            claim.prev_hash, claim.claimed_at,
        )  # fmt: skip
        applied, _current = await cql.lwt(q["claim"], row)
        if applied:
            return Claimed(ClaimOutcome.NEW, claim)
        rows = await cql.run(q["get"], (claim.allowance_id, claim.counter), SERIAL)
        if not rows:
            raise StoreUnavailable("Cassandra: offline claim outcome unknown")
        holder = _claim(rows[0])
        if holder.digest != claim.digest:
            return Claimed(ClaimOutcome.CONFLICT, holder)
        # Ours: applied before (a repeated upload) or just now with an unknown outcome.
        new = applied is None and holder.claimed_at == claim.claimed_at
        return Claimed(ClaimOutcome.NEW if new else ClaimOutcome.SAME, holder)

    async def offline_claims(self, allowance_id: str) -> list[OfflineClaim]:
        cql, q = await self._offline_cql()
        return [_claim(r) for r in await cql.run(q["list"], (allowance_id,))]

    async def record_offline_case(self, case: OfflineCase) -> bool:
        cql, q = await self._offline_cql()
        applied, _ = await cql.lwt(
            q["case"],
            (
                _BUCKET, case.case_id, case.allowance_id, case.counter, case.digest,
                case.terminal_id, ",".join(case.problems), case.liability, case.paid,
                case.amount, case.currency, case.evidence, case.created_at,
            ),
        )  # fmt: skip
        if applied is None:
            raise StoreUnavailable("Cassandra: offline case outcome unknown")
        return applied

    async def offline_cases(self) -> list[OfflineCase]:
        cql, q = await self._offline_cql()
        return sorted((_case(r) for r in await cql.run(q["cases"], (_BUCKET,))), key=_id)

    async def offline_upload_mark(self, terminal_id: str) -> int:
        cql, q = await self._offline_cql()
        rows = await cql.run(q["mark"], (terminal_id,), SERIAL)
        return int(rows[0]["seq"]) if rows else 0

    async def advance_offline_upload_mark(self, terminal_id: str, seq: int) -> int:
        cql, q = await self._offline_cql()
        for _ in range(_ATTEMPTS):
            rows = await cql.run(q["mark"], (terminal_id,), SERIAL)
            if not rows:
                applied, _ = await cql.lwt(q["mark_new"], (terminal_id, seq))
            else:
                current = int(rows[0]["seq"])
                if current >= seq:
                    return current
                applied, _ = await cql.lwt(q["mark_move"], (seq, terminal_id, current))
            if applied:
                return seq
        raise StoreUnavailable("Cassandra: offline upload mark contended")


def _id(case: OfflineCase) -> str:
    return case.case_id
