"""Stand-in usage on SQLite: one upsert that adds only while the total stays within the limit.

The statement is atomic against every other connection and process on the file (SQLite
serialises writers), so two concurrent stand-ins of one card cannot both pass the limit.
Rows of old windows are deleted by the same call (bounded by the primary key's order).
"""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS standin_usage (
    card_token TEXT NOT NULL,
    currency TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    total INTEGER NOT NULL,
    PRIMARY KEY (card_token, currency, window_start)
);
"""


def reserve(
    conn: sqlite3.Connection,
    card_token: str,
    currency: str,
    window_start: int,
    amount: int,
    limit: int,
) -> bool:
    if amount > limit:
        return False
    conn.execute("BEGIN IMMEDIATE")
    rows = conn.execute(
        "INSERT INTO standin_usage (card_token, currency, window_start, total) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (card_token, currency, window_start) DO UPDATE"
        " SET total = total + excluded.total WHERE total + excluded.total <= ?"
        " RETURNING total",
        (card_token, currency, window_start, amount, limit),
    ).fetchall()
    conn.execute(
        "DELETE FROM standin_usage WHERE card_token = ? AND currency = ? AND window_start < ?",
        (card_token, currency, window_start),
    )
    conn.execute("COMMIT")
    return bool(rows)
