"""The issuer's offline books: the hold behind each allowance and what was paid against it.

Granting an allowance holds its cumulative cap on the account (the money exists before the
device can spend it offline). Each settled offline spend is posted once (keyed by the spend's
digest): from the hold while it lasts, the rest charged to the account directly (a cloned
device's extra spending: the cardholder's, by the rule in ``payswitch.offline.checks``).
Renewing or expiring an allowance releases what is left of its hold.

SQLite (WAL, ``synchronous=FULL``), synchronous calls: run them off the event loop.
Amounts in minor units of the allowance's currency.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from payswitch.offline.durable import connect, transaction

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS offline_holds (
        allowance_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, currency TEXT NOT NULL,
        cap INTEGER NOT NULL, used INTEGER NOT NULL, released INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS offline_posts (
        spend_key TEXT PRIMARY KEY, allowance_id TEXT NOT NULL, amount INTEGER NOT NULL,
        from_hold INTEGER NOT NULL, charged INTEGER NOT NULL)""",
)


class OfflineBooksError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Posted:
    from_hold: int
    charged: int  # beyond the hold: on the cardholder's account
    repeated: bool


@dataclass(frozen=True, slots=True)
class HoldState:
    allowance_id: str
    account_id: str
    currency: str
    cap: int
    used: int
    released: int
    charged: int


class OfflineBooks:
    def __init__(self, path: Path | str) -> None:
        self._conn = connect(path, threads=True)
        for statement in _SCHEMA:
            self._conn.execute(statement)

    def close(self) -> None:
        self._conn.close()

    def hold(self, allowance_id: str, account_id: str, currency: str, cap: int) -> None:
        """Hold ``cap`` for a new allowance (idempotent on its id)."""
        with transaction(self._conn):
            self._conn.execute(
                "INSERT OR IGNORE INTO offline_holds (allowance_id, account_id, currency, cap, "
                "used) VALUES (?, ?, ?, ?, 0)",
                (allowance_id, account_id, currency, cap),
            )

    def post(self, spend_key: str, allowance_id: str, amount: int) -> Posted:
        """One settled spend, once: from the hold, the excess charged to the account."""
        with transaction(self._conn):
            row = self._conn.execute(
                "SELECT from_hold, charged FROM offline_posts WHERE spend_key = ?", (spend_key,)
            ).fetchone()
            if row is not None:
                return Posted(int(row[0]), int(row[1]), True)
            hold = self._conn.execute(
                "SELECT cap, used, released FROM offline_holds WHERE allowance_id = ?",
                (allowance_id,),
            ).fetchone()
            if hold is None:
                raise OfflineBooksError(f"allowance_id: no hold for {allowance_id!r}")
            cap, used, released = (int(x) for x in hold)
            room = max(0, cap - used - released)
            from_hold = min(room, amount)
            self._conn.execute(
                "UPDATE offline_holds SET used = used + ? WHERE allowance_id = ?",
                (from_hold, allowance_id),
            )
            self._conn.execute(
                "INSERT INTO offline_posts VALUES (?, ?, ?, ?, ?)",
                (spend_key, allowance_id, amount, from_hold, amount - from_hold),
            )
            return Posted(from_hold, amount - from_hold, False)

    def release(self, allowance_id: str) -> int:
        """Renewal or expiry: release what is left of the hold; returns it."""
        with transaction(self._conn):
            row = self._conn.execute(
                "SELECT cap, used, released FROM offline_holds WHERE allowance_id = ?",
                (allowance_id,),
            ).fetchone()
            if row is None:
                return 0
            cap, used, released = (int(x) for x in row)
            free = cap - used - released
            self._conn.execute(
                "UPDATE offline_holds SET released = released + ? WHERE allowance_id = ?",
                (free, allowance_id),
            )
            return free

    def state(self, allowance_id: str) -> HoldState | None:
        row = self._conn.execute(
            "SELECT h.allowance_id, account_id, currency, cap, used, released, "
            "coalesce((SELECT sum(charged) FROM offline_posts p "
            "WHERE p.allowance_id = h.allowance_id), 0) FROM offline_holds h "
            "WHERE h.allowance_id = ?",
            (allowance_id,),
        ).fetchone()
        if row is None:
            return None
        a, acct, cur, cap, used, rel, charged = row
        return HoldState(str(a), str(acct), str(cur), int(cap), int(used), int(rel), int(charged))

    def total_posted(self) -> int:
        return int(
            self._conn.execute("SELECT coalesce(sum(amount), 0) FROM offline_posts").fetchone()[0]
        )
