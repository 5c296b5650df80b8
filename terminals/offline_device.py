"""The payer device (a card or phone wallet) spending an offline allowance.

It holds the signed allowance, its remaining balance and count, its monotonic counter and the
hash of its last spend, in a SQLite file written with ``synchronous=FULL``: the next spend's body
is committed (counter advanced, balance taken) before it is signed, so a crash can cost the
holder a counter (a gap the network ignores) but can never make it sign two different spends
under one counter. After a crash the committed but unsigned spend is signed again: the same
bytes, the same deterministic content.

The key lives in a signer (``payswitch.offline.ecdsa.Signer``): ``TokenSigner`` keeps it in the
device's own PKCS#11 token, standing in for a secure element; tests and the campaign may use a
``SoftwareKey``. Blocking (SQLite, PKCS#11): call from a worker thread in async code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payswitch.offline import ecdsa
from payswitch.offline.durable import connect, transaction
from payswitch.offline.formats import Allowance, Signed, Spend


class DeviceRefusal(Exception):
    """The device will not sign this spend; ``reason`` says which of its limits."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenSigner:
    """The device key in a PKCS#11 token (``hsm.offline``, label ``<owner>/offline/v1``)."""

    def __init__(self, pool: Any, owner: str) -> None:
        from hsm import offline

        self._pool = pool
        self._owner = owner
        self._offline = offline
        pool.run_sync(offline.ensure, owner)

    def public_key(self) -> bytes:
        key: bytes = self._pool.run_sync(self._offline.public_key, self._owner, 1)
        return key

    def sign_digest(self, digest: bytes) -> bytes:
        sig: bytes = self._pool.run_sync(self._offline.sign_digest, self._owner, 1, digest)
        return sig


_SCHEMA = """
CREATE TABLE IF NOT EXISTS wallet (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    allowance BLOB NOT NULL, allowance_sig BLOB NOT NULL,
    counter INTEGER NOT NULL, spent INTEGER NOT NULL,
    last_hash BLOB NOT NULL, pending BLOB
)
"""


@dataclass(frozen=True, slots=True)
class Balance:
    remaining: int
    count_left: int
    counter: int
    currency: str


class PayerDevice:
    """One allowance at a time; ``load`` replaces it (after renewal)."""

    def __init__(self, path: Path | str, signer: ecdsa.Signer) -> None:
        self.signer = signer
        self._conn = connect(path, threads=True)  # one caller at a time, any thread
        self._conn.execute(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def load(self, allowance: Signed) -> None:
        """Take a new allowance (its device key must be ours); the counter restarts at 1."""
        a = Allowance.parse(allowance.body)
        if a.device_key != self.signer.public_key():
            raise ValueError("allowance: names another device key")
        with transaction(self._conn):
            self._conn.execute("DELETE FROM wallet")
            self._conn.execute(
                "INSERT INTO wallet VALUES (1, ?, ?, 0, 0, ?, NULL)",
                (allowance.body, allowance.signature, a.genesis()),
            )

    def allowance(self) -> Signed:
        row = self._row()
        return Signed(bytes(row[0]), bytes(row[1]))

    def _row(self) -> tuple[Any, ...]:
        row = self._conn.execute(
            "SELECT allowance, allowance_sig, counter, spent, last_hash, pending FROM wallet"
        ).fetchone()
        if row is None:
            raise DeviceRefusal("no allowance")
        return tuple(row)

    def balance(self) -> Balance:
        body, _sig, counter, spent, _h, _p = self._row()
        a = Allowance.parse(bytes(body))
        return Balance(a.cumulative_cap - spent, a.count_cap - counter, counter, a.currency)

    def spend(
        self, amount: int, currency: str, merchant_id: str, terminal_id: str, now: int
    ) -> Signed:
        """Commit the next spend, then sign it. Raises DeviceRefusal beyond a limit."""
        body, _sig, counter, spent, last_hash, _pending = self._row()
        a = Allowance.parse(bytes(body))
        if currency != a.currency:
            raise DeviceRefusal("currency")
        if now > a.expires_at:
            raise DeviceRefusal("expired")
        if amount > a.per_tx_cap:
            raise DeviceRefusal("per_tx_cap")
        if counter + 1 > a.count_cap:
            raise DeviceRefusal("count_cap")
        if spent + amount > a.cumulative_cap:
            raise DeviceRefusal("cumulative_cap")
        s = Spend(
            a.allowance_id, counter + 1, amount, currency, merchant_id, terminal_id, now,
            bytes(last_hash),
        )  # fmt: skip
        canonical = s.canonical()
        with transaction(self._conn):  # durable before it signs
            self._conn.execute(
                "UPDATE wallet SET counter = ?, spent = ?, last_hash = ?, pending = ?",
                (s.counter, spent + amount, s.digest(), canonical),
            )
        return Signed(canonical, self.signer.sign_digest(s.digest()))

    def resign_pending(self) -> Signed | None:
        """After a crash: the last committed spend, signed again (same bytes)."""
        pending = self._row()[5]
        if pending is None:
            return None
        body = bytes(pending)
        return Signed(body, self.signer.sign_digest(ecdsa.sha256(body)))
