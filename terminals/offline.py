"""Terminal offline mode: approve an offline spend with no switch, durably, and upload later.

The terminal checks the pair with ``payswitch.offline.checks`` against the issuer keys and
revocation list it cached at its last sync (``Trust``), then its own rules: the floor limit (the
largest offline sale it takes), per card (card token) at most ``per_card_count`` sales and
``per_card_total`` minor units since its last sync, and never a counter of an allowance it has
already journalled. The sale goes into the journal (SQLite, WAL, ``synchronous=FULL``: the
commit is fsynced) before ``approve`` returns, so a ``kill -9`` or a power cut after "approved"
loses nothing; the UNIQUE (allowance, counter) constraint is the seen-counter check itself.

The journal keeps the canonical bytes and signatures exactly as received: the switch
re-verifies everything at settlement, so an entry altered in the file afterwards is caught
there and charged to the merchant. ``pending`` and ``mark_synced`` drive a resumable upload.
Blocking (SQLite): call from a worker thread in async code.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

from payswitch.offline.checks import Trust, check
from payswitch.offline.durable import connect, transaction
from payswitch.offline.formats import Signed
from payswitch.offline.wire import Limits

__all__ = ["Approval", "Entry", "Limits", "OfflineDecline", "OfflineTerminal"]


class OfflineDecline(Exception):
    """The terminal refuses the offline sale; ``reason`` is a stable word for receipts/tests."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Approval:
    seq: int
    allowance_id: str
    counter: int
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One journalled sale, as uploaded."""

    seq: int
    allowance: Signed
    spend: Signed
    trust_version: int


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS journal (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        allowance BLOB NOT NULL, allowance_sig BLOB NOT NULL,
        spend BLOB NOT NULL, spend_sig BLOB NOT NULL,
        allowance_id TEXT NOT NULL, counter INTEGER NOT NULL,
        card_token TEXT NOT NULL, amount INTEGER NOT NULL, currency TEXT NOT NULL,
        trust_version INTEGER NOT NULL, approved_at REAL NOT NULL,
        UNIQUE (allowance_id, counter))""",
    "CREATE INDEX IF NOT EXISTS journal_card ON journal (card_token, seq)",
    """CREATE TABLE IF NOT EXISTS state (
        one INTEGER PRIMARY KEY CHECK (one = 1), synced_through INTEGER NOT NULL,
        trust TEXT NOT NULL, limits TEXT NOT NULL, journal_id TEXT NOT NULL)""",
)


def trust_to_json(trust: Trust) -> str:
    return json.dumps(
        {
            "keys": [[i, v, k.hex()] for (i, v), k in sorted(trust.keys.items())],
            "revoked_keys": sorted([i, v] for i, v in trust.revoked_keys),
            "revoked_devices": sorted(trust.revoked_devices),
            "version": trust.version,
        }
    )


def trust_from_json(text: str) -> Trust:
    d = json.loads(text)
    return Trust(
        keys={(str(i), int(v)): bytes.fromhex(k) for i, v, k in d["keys"]},
        revoked_keys=frozenset((str(i), int(v)) for i, v in d["revoked_keys"]),
        revoked_devices=frozenset(str(x) for x in d["revoked_devices"]),
        version=int(d["version"]),
    )


class OfflineTerminal:
    """The offline side of one terminal: its journal, cached trust and limits."""

    def __init__(self, path: Path | str, terminal_id: str, merchant_id: str) -> None:
        self.terminal_id = terminal_id
        self.merchant_id = merchant_id
        self._conn = connect(path, threads=True)  # one caller at a time, any thread
        for statement in _SCHEMA:
            self._conn.execute(statement)
        with transaction(self._conn):
            self._conn.execute(
                "INSERT OR IGNORE INTO state VALUES (1, 0, ?, ?, ?)",
                (trust_to_json(Trust()), json.dumps(_limits(Limits())), uuid.uuid4().hex),
            )

    def close(self) -> None:
        self._conn.close()

    # --- what a sync brings ---------------------------------------------------------------
    def install(self, trust: Trust, limits: Limits) -> None:
        with transaction(self._conn):
            self._conn.execute(
                "UPDATE state SET trust = ?, limits = ?",
                (trust_to_json(trust), json.dumps(_limits(limits))),
            )

    def trust(self) -> Trust:
        return trust_from_json(self._conn.execute("SELECT trust FROM state").fetchone()[0])

    def limits(self) -> Limits:
        return Limits(**json.loads(self._conn.execute("SELECT limits FROM state").fetchone()[0]))

    # --- the sale -------------------------------------------------------------------------
    def approve(self, allowance: Signed, spend: Signed, now: float) -> Approval:
        """Check, journal (fsynced), then return the approval; OfflineDecline otherwise."""
        trust, limits = self.trust(), self.limits()
        checked = check(
            allowance, spend, trust, terminal_id=self.terminal_id, merchant_id=self.merchant_id
        )
        if not checked.ok or checked.allowance is None or checked.spend is None:
            raise OfflineDecline(checked.problems[0].value)
        a, s = checked.allowance, checked.spend
        if abs(s.time - now) > 600:
            raise OfflineDecline("clock")
        if s.amount > limits.floor_limit:
            raise OfflineDecline("floor_limit")
        try:
            with transaction(self._conn):
                count, total = self._conn.execute(
                    "SELECT count(*), coalesce(sum(amount), 0) FROM journal "
                    "WHERE card_token = ? AND seq > (SELECT synced_through FROM state)",
                    (a.card_token,),
                ).fetchone()
                if count + 1 > limits.per_card_count:
                    raise OfflineDecline("per_card_count")
                if total + s.amount > limits.per_card_total:
                    raise OfflineDecline("per_card_total")
                cur = self._conn.execute(
                    "INSERT INTO journal (allowance, allowance_sig, spend, spend_sig, "
                    "allowance_id, counter, card_token, amount, currency, trust_version, "
                    "approved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        allowance.body, allowance.signature, spend.body, spend.signature,
                        a.allowance_id, s.counter, a.card_token, s.amount, s.currency,
                        trust.version, now,
                    ),
                )  # fmt: skip
        except sqlite3.IntegrityError:
            raise OfflineDecline("seen_counter") from None
        seq = cur.lastrowid
        assert seq is not None
        return Approval(seq, a.allowance_id, s.counter, s.amount, s.currency)

    # --- the upload -----------------------------------------------------------------------
    def journal_id(self) -> str:
        """This journal's own id: the switch counts ``seq`` per (terminal, journal)."""
        return str(self._conn.execute("SELECT journal_id FROM state").fetchone()[0])

    def synced_through(self) -> int:
        return int(self._conn.execute("SELECT synced_through FROM state").fetchone()[0])

    def pending(self, after: int | None = None, limit: int = 10_000) -> list[Entry]:
        """Journalled sales after ``after`` (default: after the last acknowledged one)."""
        start = self.synced_through() if after is None else after
        rows = self._conn.execute(
            "SELECT seq, allowance, allowance_sig, spend, spend_sig, trust_version FROM journal "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (start, limit),
        ).fetchall()
        return [
            Entry(int(q), Signed(_b(a), _b(asig)), Signed(_b(s), _b(ssig)), int(v))
            for q, a, asig, s, ssig, v in rows
        ]

    def mark_synced(self, seq: int) -> None:
        """The switch acknowledged everything up to ``seq`` (never moves backwards)."""
        with transaction(self._conn):
            self._conn.execute("UPDATE state SET synced_through = max(synced_through, ?)", (seq,))

    def count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM journal").fetchone()[0])


def _limits(limits: Limits) -> dict[str, int]:
    return {
        "floor_limit": limits.floor_limit,
        "per_card_count": limits.per_card_count,
        "per_card_total": limits.per_card_total,
    }


def _b(value: bytes | str) -> bytes:
    """A column as bytes (an entry edited in the file may have become TEXT: upload it as it is,
    settlement judges it)."""
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
