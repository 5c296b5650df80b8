"""Prepared CQL of the Cassandra store, and rows <-> store records.

Column names come from ``base.COLUMNS`` and ``check_cas`` (validated names only), never from
outside input, so building the statement text here is safe (hence the ``noqa: S608``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cassandra.cluster import Session
from cassandra.query import PreparedStatement

from switch.domain.idempotency import IdempotencyRecord, IdemStatus
from switch.domain.transactions import COLUMNS, Transaction, TxState, TxType

IDEM_COLUMNS = (
    "scope",
    "key",
    "operation",
    "fingerprint",
    "status",
    "created_at",
    "expires_at",
    "transaction_id",
    "response",
    "claim_id",
)
_TX_LIST = ", ".join(COLUMNS)
_IDEM_LIST = ", ".join(IDEM_COLUMNS)
_INT_COLUMNS = frozenset(
    {
        "stan",
        "amount_minor",
        "captured_minor",
        "refunded_minor",
        "version",
        "billing_minor",
        "billing_captured_minor",
        "dcc_markup_bps",
        "dcc_local_minor",
    }
)
_FLOAT_COLUMNS = frozenset({"created_at", "updated_at", "deadline_at"})

# Static statements: (attribute, CQL). Index and bucket tables are only ever written plainly,
# the others only by lightweight transactions.
_STATIC = {
    # idempotency
    "idem_get": f"SELECT {_IDEM_LIST} FROM idempotency WHERE scope = ? AND key = ?",  # noqa: S608
    "idem_claim": (
        f"INSERT INTO idempotency ({_IDEM_LIST}) VALUES ({', '.join('?' * len(IDEM_COLUMNS))}) "  # noqa: S608
        "IF NOT EXISTS USING TTL ?"
    ),
    "idem_replace": (
        "UPDATE idempotency USING TTL ? SET operation = ?, fingerprint = ?, status = ?, "
        "created_at = ?, expires_at = ?, transaction_id = ?, response = ?, claim_id = ? "
        "WHERE scope = ? AND key = ? IF expires_at <= ?"
    ),
    # Only the claim still IN_FLIGHT: a completed key's answer is final.
    "idem_attach": (
        "UPDATE idempotency USING TTL ? SET transaction_id = ? "
        "WHERE scope = ? AND key = ? IF claim_id = ? AND status = ?"
    ),
    "idem_complete": (
        "UPDATE idempotency USING TTL ? SET status = ?, response = ?, transaction_id = ? "
        "WHERE scope = ? AND key = ? IF claim_id = ? AND status = ?"
    ),
    "idem_release": "DELETE FROM idempotency WHERE scope = ? AND key = ? IF status = ?",
    "idem_release_own": (
        "DELETE FROM idempotency WHERE scope = ? AND key = ? IF status = ? AND claim_id = ?"
    ),
    # transactions
    "tx_get": f"SELECT {_TX_LIST}, writers FROM transactions WHERE id = ?",  # noqa: S608
    # a page of rows in one request (the clear step's reads: one round trip per IN_KEYS ids)
    "tx_get_many": f"SELECT {_TX_LIST}, writers FROM transactions WHERE id IN ?",  # noqa: S608
    "tx_insert": (
        f"INSERT INTO transactions ({_TX_LIST}, writers) "  # noqa: S608
        f"VALUES ({', '.join('?' * len(COLUMNS))}, ?) IF NOT EXISTS"
    ),
    # duplicate transmissions
    "dup_get": (
        "SELECT transaction_id, writer, created_at FROM transmissions "
        "WHERE terminal_id = ? AND local_date = ? AND stan = ?"
    ),
    "dup_claim": (
        "INSERT INTO transmissions (terminal_id, local_date, stan, transaction_id, writer, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS"
    ),
    "dup_take_over": (
        "UPDATE transmissions SET transaction_id = ?, writer = ?, created_at = ? "
        "WHERE terminal_id = ? AND local_date = ? AND stan = ? IF writer = ?"
    ),
    "dup_release": (
        "DELETE FROM transmissions WHERE terminal_id = ? AND local_date = ? AND stan = ? "
        "IF writer = ?"
    ),
    # recovery index (plain writes)
    "idx_put": (
        "INSERT INTO transactions_by_state (state, bucket, deadline_at, id) VALUES (?, ?, ?, ?)"
    ),
    "idx_drop": (
        "DELETE FROM transactions_by_state "
        "WHERE state = ? AND bucket = ? AND deadline_at = ? AND id = ?"
    ),
    "idx_first": (
        "SELECT deadline_at, id FROM transactions_by_state "
        "WHERE state = ? AND bucket = ? AND (deadline_at) < (?) LIMIT ?"
    ),
    "idx_after": (
        "SELECT deadline_at, id FROM transactions_by_state WHERE state = ? AND bucket = ? "
        "AND (deadline_at, id) > (?, ?) AND (deadline_at) < (?) LIMIT ?"
    ),
    "bucket_put": (
        "INSERT INTO transaction_state_buckets (state, bucket) VALUES (?, ?) USING TIMESTAMP ?"
    ),
    "bucket_drop": (
        "DELETE FROM transaction_state_buckets USING TIMESTAMP ? WHERE state = ? AND bucket = ?"
    ),
    "buckets": (
        "SELECT bucket FROM transaction_state_buckets WHERE state = ? AND bucket > ? "
        "AND bucket <= ? LIMIT ?"
    ),
    # refunds (plain writes)
    "refund_put": "INSERT INTO refunds_by_original (original_id, created_at, id) VALUES (?, ?, ?)",
    "refunds_first": "SELECT created_at, id FROM refunds_by_original WHERE original_id = ? LIMIT ?",
    "refunds_after": (
        "SELECT created_at, id FROM refunds_by_original WHERE original_id = ? "
        "AND (created_at, id) > (?, ?) LIMIT ?"
    ),
    # PAN vault
    "vault_get": (
        "SELECT token_digest, blob, key_version, created_at, updated_at, writer FROM vault "
        "WHERE token_digest = ?"
    ),
    "vault_put": (
        "INSERT INTO vault (token_digest, blob, key_version, created_at, updated_at, writer) "
        "VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS"
    ),
    "vault_write": (
        "INSERT INTO vault (token_digest, blob, key_version, created_at, updated_at, writer) "
        "VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
    ),
    "vault_renew": (
        "UPDATE vault SET blob = ?, key_version = ?, updated_at = ?, writer = ? "
        "WHERE token_digest = ? IF key_version < ?"
    ),
    # leases
    "lease_get": "SELECT owner, writer FROM leases WHERE name = ?",
    "lease_take": (
        "INSERT INTO leases (name, owner, writer) VALUES (?, ?, ?) IF NOT EXISTS USING TTL ?"
    ),
    "lease_renew": (
        "UPDATE leases USING TTL ? SET owner = ?, writer = ? WHERE name = ? IF owner = ?"
    ),
    # sequences
    "seq_get": "SELECT value, writer FROM sequences WHERE name = ?",
    "seq_first": "INSERT INTO sequences (name, value, writer) VALUES (?, ?, ?) IF NOT EXISTS",
    "seq_next": "UPDATE sequences SET value = ?, writer = ? WHERE name = ? IF value = ?",
}


class Statements:
    """Every prepared statement of the store; CAS variants are prepared on first use."""

    def __init__(self, session: Session) -> None:
        self._session = session
        for name, cql in _STATIC.items():
            setattr(self, name, session.prepare(cql))
        self._cas: dict[tuple[tuple[str, ...], tuple[str, ...]], PreparedStatement] = {}

    def __getattr__(self, name: str) -> PreparedStatement:  # for type checkers: set above
        raise AttributeError(name)

    def cas_cached(self, changes: Sequence[str], conditions: Sequence[str]) -> Any:
        return self._cas.get((tuple(changes), tuple(conditions)))

    def prepare_cas(self, changes: Sequence[str], conditions: Sequence[str]) -> PreparedStatement:
        """``UPDATE transactions SET <changes>, version = ?, writers[?] = ? WHERE id = ?
        IF <conditions> AND version = ?`` (blocking: call off the event loop)."""
        key = (tuple(changes), tuple(conditions))
        stmt = self._cas.get(key)
        if stmt is None:
            # No changes at all is a CAS too (it bumps the version): no dangling comma then.
            sets = ", ".join([*(f"{c} = ?" for c in changes), "version = ?", "writers[?] = ?"])
            ifs = " AND ".join([*(f"{c} = ?" for c in conditions), "version = ?"])
            stmt = self._session.prepare(
                f"UPDATE transactions SET {sets} WHERE id = ? IF {ifs}"  # noqa: S608
            )
            self._cas[key] = stmt
        return stmt


def db_value(value: object) -> object:
    """Enums as their plain string value."""
    if isinstance(value, TxState | TxType | IdemStatus):
        return value.value
    return value


def tx_values(tx: Transaction) -> list[object]:
    return [db_value(getattr(tx, c)) for c in COLUMNS]


def tx_from_row(row: dict[str, Any]) -> Transaction:
    values: dict[str, Any] = {}
    for c in COLUMNS:
        v = row.get(c)
        if c in _INT_COLUMNS:
            v = int(v or 0)
        elif c in _FLOAT_COLUMNS:
            v = float(v or 0.0)
        elif v is None:
            v = ""
        values[c] = v
    values["type"] = TxType(values["type"])
    values["state"] = TxState(values["state"])
    return Transaction(**values)


def idem_from_row(row: dict[str, Any]) -> IdempotencyRecord:
    return IdempotencyRecord(
        scope=row["scope"],
        key=row["key"],
        operation=row.get("operation") or "",
        fingerprint=row.get("fingerprint") or "",
        status=IdemStatus(row.get("status") or IdemStatus.IN_FLIGHT.value),
        created_at=float(row.get("created_at") or 0.0),
        expires_at=float(row.get("expires_at") or 0.0),
        transaction_id=row.get("transaction_id") or "",
        response=bytes(row.get("response") or b""),
    )
