"""The issuer's clearing side of its books: presentments posted against holds, expired holds
released, and the online capture advices that are deferred to clearing.

Rules (``present``), for a CAPTURE presentment of amount A against the authorization's hold H:

- hold still open, A <= H: post A, release the hold (the rest of H is freed);
- A > H within the scheme tolerance for the merchant's MCC (``[settlement]
  capture_tolerance_pct``, default 20 % for 5812 restaurants, 4121 taxis, 7230 salons): post
  the full A, flag ``ABOVE_HOLD_WITHIN_TOLERANCE``;
- A > H beyond the tolerance (or any excess for other MCCs): post it all the same, flag
  ``OVER_TOLERANCE`` (the issuer's recourse is a chargeback, not a refusal of the presentment);
- the hold had expired (``hold_ttl_s`` after the authorization, per issuer) or was already
  released as expired: force-post A, flag ``LATE_PRESENTMENT``;
- already posted by the online capture advice: nothing moves, flag ``ALREADY_POSTED``;
- reversed (voided) or never approved: REJECTED (``REVERSED`` / ``NO_AUTHORIZATION``).

A REFUND presentment credits the account unless the online refund advice already did
(``ALREADY_POSTED``); it is refused beyond what was posted. Each (kind, RRN) is decided once:
a presentment sent again gets its first result. ``expire_holds`` releases holds older than the
TTL that were never captured (state EXPIRED; GetHold shows them released).

The time a hold was placed is stamped by a trigger on the authorizations table (added here,
so ``Books.authorize`` is unchanged); every function runs on the books' own thread.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from payswitch.world.settlement import SettlementConfig

HELD = "HELD"
POSTED = "POSTED"
EXPIRED = "EXPIRED"  # released because it expired uncaptured

SCHEMA = """
CREATE TABLE IF NOT EXISTS hold_times (rrn TEXT PRIMARY KEY, held_at REAL NOT NULL);
CREATE TRIGGER IF NOT EXISTS stamp_hold AFTER INSERT ON authorizations
    WHEN NEW.state = 'HELD'
    BEGIN
        INSERT OR IGNORE INTO hold_times (rrn, held_at)
        VALUES (NEW.rrn, (julianday('now') - 2440587.5) * 86400.0);
    END;
CREATE TABLE IF NOT EXISTS deferred_captures (
    rrn TEXT PRIMARY KEY,
    amount INTEGER NOT NULL,
    mcc TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS presentments (
    kind TEXT NOT NULL,
    rrn TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    file_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    posted INTEGER NOT NULL,
    status TEXT NOT NULL,
    flags TEXT NOT NULL,
    PRIMARY KEY (kind, rrn)
);
"""


@dataclass(frozen=True, slots=True)
class IssuerRules:
    hold_ttl_s: float
    settlement: SettlementConfig = field(default_factory=SettlementConfig)


@dataclass(frozen=True, slots=True)
class PresentmentIn:
    kind: str  # CAPTURE | REFUND
    transaction_id: str
    rrn: str
    original_rrn: str
    mcc: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class PresentmentOut:
    transaction_id: str
    rrn: str
    status: str  # POSTED | REJECTED
    flags: tuple[str, ...] = ()
    posted: int = 0
    extra: dict[str, object] = field(default_factory=dict, compare=False)


def ensure_schema(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)


def _held_at(db: sqlite3.Connection, rrn: str) -> float | None:
    row = db.execute("SELECT held_at FROM hold_times WHERE rrn = ?", (rrn,)).fetchone()
    return None if row is None else float(row[0])


def _expired(db: sqlite3.Connection, rrn: str, rules: IssuerRules, now: float) -> bool:
    held_at = _held_at(db, rrn)
    return held_at is not None and held_at + rules.hold_ttl_s <= now


def defer_reason(
    db: sqlite3.Connection,
    rrn: str,
    row: tuple[Any, ...] | None,
    amount: int,
    currency: str,
    mcc: str,
    rules: IssuerRules,
    now: float,
) -> str | None:
    """Why an online capture advice is acknowledged but left for clearing to post, or None
    (then ``Books.capture`` decides as it always did). ``row``: state, account, amount,
    currency of the authorization."""
    if row is None or currency != row[3] or amount <= 0:
        return None
    state, _, hold = row[0], row[1], row[2]
    if state == EXPIRED or (state == HELD and _expired(db, rrn, rules, now)):
        return "LATE_PRESENTMENT"
    if state == HELD and amount > hold and mcc in rules.settlement.tolerance_mccs:
        if amount <= rules.settlement.capture_ceiling(hold, mcc):
            return "ABOVE_HOLD_WITHIN_TOLERANCE"
    return None


def record_deferred(db: sqlite3.Connection, rrn: str, amount: int, mcc: str, reason: str) -> None:
    db.execute(
        "INSERT OR IGNORE INTO deferred_captures (rrn, amount, mcc, reason) VALUES (?, ?, ?, ?)",
        (rrn, amount, mcc, reason),
    )


def present(
    db: sqlite3.Connection, p: PresentmentIn, file_id: str, rules: IssuerRules, now: float
) -> PresentmentOut:
    """Post one presentment (see the module docstring); the caller holds a write transaction."""
    seen = db.execute(
        "SELECT status, flags, posted FROM presentments WHERE kind = ? AND rrn = ?",
        (p.kind, p.rrn),
    ).fetchone()
    if seen is not None:
        flags = tuple(f for f in seen[1].split(",") if f)
        return PresentmentOut(p.transaction_id, p.rrn, seen[0], flags, int(seen[2]))
    if p.kind == "CAPTURE":
        out = _present_capture(db, p, rules, now)
    else:
        out = _present_refund(db, p)
    db.execute(
        "INSERT INTO presentments (kind, rrn, transaction_id, file_id, amount, posted, status,"
        " flags) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (p.kind, p.rrn, p.transaction_id, file_id, p.amount, out.posted, out.status,
         ",".join(out.flags)),
    )  # fmt: skip
    return out


def _reject(p: PresentmentIn, reason: str) -> PresentmentOut:
    return PresentmentOut(p.transaction_id, p.rrn, "REJECTED", (reason,))


def _present_capture(
    db: sqlite3.Connection, p: PresentmentIn, rules: IssuerRules, now: float
) -> PresentmentOut:
    row = db.execute(
        "SELECT state, account_id, amount, currency, posted FROM authorizations WHERE rrn = ?",
        (p.rrn,),
    ).fetchone()
    if row is None or row[0] not in (HELD, POSTED, EXPIRED, "RELEASED"):
        return _reject(p, "NO_AUTHORIZATION")
    state, account, hold, currency, posted = row
    if currency != p.currency:
        return _reject(p, "CURRENCY_DIFFERS")
    if state == "RELEASED":
        return _reject(p, "REVERSED")
    if state == POSTED:
        again = ("ALREADY_POSTED",) if posted == p.amount else ("ALREADY_POSTED", "AMOUNT_DIFFERS")
        return PresentmentOut(p.transaction_id, p.rrn, "POSTED", again, 0)
    flags: list[str] = []
    if p.amount > hold:
        within = p.amount <= rules.settlement.capture_ceiling(hold, p.mcc)
        flags.append("ABOVE_HOLD_WITHIN_TOLERANCE" if within else "OVER_TOLERANCE")
    if state == EXPIRED or _expired(db, p.rrn, rules, now):
        flags.append("LATE_PRESENTMENT")
    release = hold if state == HELD else 0  # an expired hold was released already
    db.execute(
        "UPDATE authorizations SET state = ?, posted = ? WHERE rrn = ?", (POSTED, p.amount, p.rrn)
    )
    db.execute(
        "UPDATE accounts SET balance = balance - ?, held = held - ?, open_holds = open_holds - ?"
        " WHERE id = ?",
        (p.amount, release, 1 if release else 0, account),
    )
    db.execute("DELETE FROM deferred_captures WHERE rrn = ?", (p.rrn,))
    return PresentmentOut(p.transaction_id, p.rrn, "POSTED", tuple(flags), p.amount)


def _present_refund(db: sqlite3.Connection, p: PresentmentIn) -> PresentmentOut:
    done = db.execute(
        "SELECT amount FROM advices WHERE kind = 'refund' AND rrn = ?", (p.rrn,)
    ).fetchone()
    if done is not None:
        return PresentmentOut(p.transaction_id, p.rrn, "POSTED", ("ALREADY_POSTED",), 0)
    row = db.execute(
        "SELECT state, account_id, posted, refunded, currency FROM authorizations WHERE rrn = ?",
        (p.original_rrn,),
    ).fetchone()
    if row is None or row[0] != POSTED:
        return _reject(p, "NO_CAPTURE")
    if row[4] != p.currency or row[3] + p.amount > row[2]:
        return _reject(p, "MORE_THAN_POSTED")
    db.execute(
        "UPDATE authorizations SET refunded = refunded + ? WHERE rrn = ?",
        (p.amount, p.original_rrn),
    )
    db.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (p.amount, row[1]))
    db.execute(
        "INSERT INTO advices (kind, rrn, original_rrn, amount, response_code) VALUES"
        " ('refund', ?, ?, ?, 100)",
        (p.rrn, p.original_rrn, p.amount),
    )
    return PresentmentOut(p.transaction_id, p.rrn, "POSTED", (), p.amount)


def expire_holds(db: sqlite3.Connection, rules: IssuerRules, now: float) -> list[str]:
    """Release every open hold older than the TTL that no capture reached; their RRNs."""
    rows = db.execute(
        "SELECT a.rrn, a.account_id, a.amount FROM authorizations a JOIN hold_times h"
        " ON h.rrn = a.rrn WHERE a.state = ? AND h.held_at + ? <= ?"
        " AND a.rrn NOT IN (SELECT rrn FROM deferred_captures) ORDER BY h.held_at, a.rrn",
        (HELD, rules.hold_ttl_s, now),
    ).fetchall()
    for rrn, account, amount in rows:
        db.execute("UPDATE authorizations SET state = ? WHERE rrn = ?", (EXPIRED, rrn))
        db.execute(
            "UPDATE accounts SET held = held - ?, open_holds = open_holds - 1 WHERE id = ?",
            (amount, account),
        )
    return [r[0] for r in rows]


def write_issuer_report(
    report_dir: Path, issuer_id: str, name: str, doc: Mapping[str, object]
) -> Path:
    """The issuer's own settlement report (``payswitch-issuer-settlement/1``), always inside
    ``report_dir/issuer/<issuer_id>``: a ``name`` that would leave it is refused."""
    folder = Path(report_dir) / "issuer" / issuer_id
    path = folder / f"{name}.json"
    if path.resolve().parent != folder.resolve():
        raise ValueError("report name leaves the issuer's report folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"format": "payswitch-issuer-settlement/1", **doc}, indent=1))
    tmp.replace(path)
    return path


def _parts_folder(report_dir: Path, issuer_id: str, file_id: str) -> Path:
    folder = Path(report_dir) / "issuer" / issuer_id
    parts = folder / "parts" / file_id
    if parts.resolve().parent != (folder / "parts").resolve():
        raise ValueError("report name leaves the issuer's report folder")
    return parts


def write_issuer_part(
    report_dir: Path, issuer_id: str, file_id: str, page: int, postings: list[dict[str, Any]]
) -> Path:
    """One page's postings of a file presented in pages, kept until the last page
    (``assemble_issuer_report``); a page presented again replaces its part."""
    parts = _parts_folder(report_dir, issuer_id, file_id)
    parts.mkdir(parents=True, exist_ok=True)
    path = parts / f"p{page:06d}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(postings))
    tmp.replace(path)
    return path


def assemble_issuer_report(
    report_dir: Path, issuer_id: str, file_id: str, head: Mapping[str, object]
) -> Path:
    """The file's one report (``payswitch-issuer-settlement/1``, as a file presented whole
    gets) from its page parts in page order, written a part at a time; the parts are then
    removed. Run again (a file presented again), it rebuilds the same report."""
    parts = _parts_folder(report_dir, issuer_id, file_id)
    path = parts.parent.parent / f"{file_id}.json"
    tmp = path.with_suffix(".json.tmp")
    doc = json.dumps({"format": "payswitch-issuer-settlement/1", **head, "postings": []})
    opening = doc[: doc.rindex("[") + 1]
    first = True
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(opening)
        for part in sorted(parts.glob("p*.json")) if parts.exists() else []:
            for posting in json.loads(part.read_text()):
                fh.write(("" if first else ",") + json.dumps(posting))
                first = False
        fh.write("]}")
    tmp.replace(path)
    if parts.exists():
        for part in parts.iterdir():
            part.unlink()
        parts.rmdir()
    return path
