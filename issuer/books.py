"""The issuer's books in SQLite: accounts, authorizations with their holds, and advices.

Synchronous on purpose: ``issuer.bookkeeper`` runs every call on one dedicated thread, which
also serialises them, so each operation is one short ``BEGIN IMMEDIATE`` transaction and no
two can interleave. WAL with ``synchronous=NORMAL``: a committed operation survives a kill -9
of the process (it is in the OS by then); only a power cut could lose the last commits.

The books never hold a PAN or an expiry. Cards live in memory (from the topology); rows are
keyed by RRN and account id.

Idempotency, per operation:
- authorization: keyed by its RRN; every answer, approvals and declines alike, is stored and
  a repeat gets it back without a second hold.
- reversal, capture (keyed by the original RRN) and refund (keyed by its own RRN): an
  approved (00) advice is stored and a repeat gets it back, changing nothing. A declined
  advice changed nothing, so a repeat is judged again on the current books; it gets the same
  answer unless the books moved in between (a capture that arrived before its authorization
  can succeed once the authorization is there; a corrected amount can succeed).
- a reversal of an RRN not seen yet is acknowledged and leaves a marker, so the late
  authorization (or refund) is declined (12) and changes nothing.
- a reversal of an approved refund (by the refund's own RRN: the switch reverses a refund whose
  answer it never got) takes the credit back: the account's balance and the authorization's
  refunded amount (and a converted refund's share) return to what they were before it.
- stand-in advice (0120-style, keyed by the stood-in authorization's RRN): an approval the
  issuer must honour. It places the hold as an authorization would (state HELD, open-to-buy
  reduced), with no status, expiry, limit or funds check, even when the available amount goes
  below zero: the switch approved it in stand-in and the issuer bears that risk. The merchant's
  capture of the sale is presented in clearing and posted against that hold
  (``issuer.books_settlement``), once; voiding it reverses the advice (``reverse``: the hold
  is released). A repeat gets the stored answer and places nothing. 14 for a card not on file,
  12 for another currency than the account's or an RRN the books already know from elsewhere
  (including one reversed before its advice arrived): nothing is held.

ARQC replay (``payswitch.atc``): every verified ARQC's ATC is recorded per card (table
``card_atcs``, keyed by a digest of PAN and PAN sequence number, never the PAN); a cryptogram
whose counter was used already or lies more than ``atc_window`` below the card's highest is
declined 59 suspected fraud, with no hold and no ARPC.

Decline order for an authorization: 12 already reversed, 14 unknown card, 59 replayed or
rolled-back ATC, then the verdict of
the issuer's cryptographic checks when they failed (55 wrong PIN, 05 bad CVV2 or ARQC; made in
the HSM before the books are touched, see ``issuer.crypto``), 05 blocked or lost,
54 expired, 13 non-positive amount, 12 currency differs from the account's (checked before the
per-transaction limit because that limit is in the account's currency), 61 above the card's
per-transaction limit, 51 not enough available funds. A cryptographic decline is stored like
any decline and never places a hold.

Cross-border (``issuer.books_fx``): an authorization the scheme converted (``conversion``) is
judged and held in its billing amount, the account's currency; its captures and refunds in
the transaction currency are converted there, so the books stay in one currency per account.

ARPC: an authorization with a verified ARQC stores the ARPC it was answered with (8 bytes; a
cryptogram sent in clear on the network, not a secret), so a repeat gets the same ARPC back.
"""

from __future__ import annotations

import secrets
import sqlite3
import string
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from pathlib import Path

from issuer import books_fx
from issuer import books_settlement as clearing
from payswitch.atc import AtcRefused, AtcState, AtcUse, advance
from payswitch.v1 import common_pb2, network_pb2
from payswitch.world.topology import AccountConfig, CardConfig

APPROVED = common_pb2.RESPONSE_CODE_APPROVED
DO_NOT_HONOUR = common_pb2.RESPONSE_CODE_DO_NOT_HONOUR
INVALID_TRANSACTION = common_pb2.RESPONSE_CODE_INVALID_TRANSACTION
INVALID_AMOUNT = common_pb2.RESPONSE_CODE_INVALID_AMOUNT
INVALID_CARD_NUMBER = common_pb2.RESPONSE_CODE_INVALID_CARD_NUMBER
INSUFFICIENT_FUNDS = common_pb2.RESPONSE_CODE_INSUFFICIENT_FUNDS
EXPIRED_CARD = common_pb2.RESPONSE_CODE_EXPIRED_CARD
EXCEEDS_AMOUNT_LIMIT = common_pb2.RESPONSE_CODE_EXCEEDS_AMOUNT_LIMIT
SUSPECTED_FRAUD = common_pb2.RESPONSE_CODE_SUSPECTED_FRAUD
DEFAULT_ATC_WINDOW = 32

# authorizations.state
HELD = "HELD"  # approved, hold open
POSTED = "POSTED"  # captured (a partial capture released the rest)
RELEASED = "RELEASED"  # approved, then reversed
DECLINED = "DECLINED"  # declined, no hold
REVERSED_EARLY = "REVERSED_EARLY"  # a reversal came first; no authorization yet

_HOLD_STATES = {
    HELD: network_pb2.HOLD_STATE_HELD,
    POSTED: network_pb2.HOLD_STATE_POSTED,
    RELEASED: network_pb2.HOLD_STATE_RELEASED,
    clearing.EXPIRED: network_pb2.HOLD_STATE_RELEASED,  # released because it expired
}

_AUTH_CODE_ALPHABET = string.ascii_uppercase + string.digits

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    currency TEXT NOT NULL,
    balance INTEGER NOT NULL,
    credit_limit INTEGER NOT NULL,
    held INTEGER NOT NULL DEFAULT 0,
    open_holds INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS authorizations (
    rrn TEXT PRIMARY KEY,
    account_id TEXT REFERENCES accounts(id),
    currency TEXT NOT NULL DEFAULT '',
    amount INTEGER NOT NULL DEFAULT 0,
    response_code INTEGER NOT NULL DEFAULT 0,
    auth_code TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    posted INTEGER NOT NULL DEFAULT 0,
    refunded INTEGER NOT NULL DEFAULT 0,
    arpc BLOB NOT NULL DEFAULT x''
);
CREATE TABLE IF NOT EXISTS advices (
    kind TEXT NOT NULL,
    rrn TEXT NOT NULL,
    original_rrn TEXT NOT NULL,
    amount INTEGER NOT NULL,
    response_code INTEGER NOT NULL,
    PRIMARY KEY (kind, rrn)
);
CREATE TABLE IF NOT EXISTS card_atcs (
    card TEXT PRIMARY KEY,
    highest INTEGER NOT NULL,
    seen INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chargebacks (
    chargeback_id TEXT PRIMARY KEY,
    rrn TEXT NOT NULL,
    account_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    raised_at REAL NOT NULL,
    state TEXT NOT NULL,
    responded_at REAL NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True, slots=True)
class AuthDecision:
    """An authorization's answer. ``fresh``: decided by this call (False for a repeat)."""

    response_code: common_pb2.ResponseCode
    auth_code: str = ""
    arpc: bytes = b""
    fresh: bool = field(default=False, compare=False)
    atc_refused: str = field(default="", compare=False)  # "replayed" / "too_old" (fresh only)


# chargebacks.state
CB_RAISED = "RAISED"  # charged back, cardholder credited
CB_REVERSED = "REVERSED"  # representment accepted: cardholder debited again
CB_UPHELD = "UPHELD"  # representment rejected: the chargeback stands


@dataclass(frozen=True, slots=True)
class ChargebackView:
    chargeback_id: str
    rrn: str
    account_id: str
    amount: int
    currency: str
    reason_code: str
    raised_at: float
    state: str
    responded_at: float


@dataclass(frozen=True, slots=True)
class AccountView:
    id: str
    currency: str
    balance: int
    credit_limit: int
    held: int
    open_holds: int

    @property
    def available(self) -> int:
        return self.balance + self.credit_limit - self.held


@dataclass(frozen=True, slots=True)
class HoldView:
    rrn: str
    account_id: str
    state: network_pb2.HoldState
    amount: int
    posted: int
    refunded: int
    currency: str


def yymm(day: date) -> str:
    return f"{day.year % 100:02d}{day.month:02d}"


def _expired(expiry: str, current: str) -> bool:
    if len(expiry) != 4 or not expiry.isdigit():
        return True  # not a date at all: treated as an invalid expiry
    return expiry < current


class Books:
    """One issuer's books. Not thread-safe: use it from one thread (see bookkeeper)."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=True)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._migrate()
        clearing.ensure_schema(self._db)
        books_fx.ensure_schema(self._db)
        # Hold TTL and capture tolerance (issuer.books_settlement); None: no deferral.
        self.rules: clearing.IssuerRules | None = None
        self.atc_window = DEFAULT_ATC_WINDOW  # counters below the highest accepted once

    def _migrate(self) -> None:
        """Books written before the ARPC column get it (empty for their authorizations)."""
        cols = {row[1] for row in self._db.execute("PRAGMA table_info(authorizations)")}
        if "arpc" not in cols:
            self._db.execute("ALTER TABLE authorizations ADD COLUMN arpc BLOB NOT NULL DEFAULT x''")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def seed(self, accounts: Iterable[AccountConfig]) -> int:
        """Open accounts that the books do not have yet; existing ones are never touched."""
        with self._tx() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO accounts (id, currency, balance, credit_limit)"
                " VALUES (?, ?, ?, ?)",
                [(a.id, a.currency, a.balance, a.credit_limit) for a in accounts],
            )
            return db.total_changes - before

    # -- authorization -------------------------------------------------------------------

    def authorize(
        self,
        rrn: str,
        card: CardConfig | None,
        amount: int,
        currency: str,
        presented_expiry: str,
        today: date,
        *,
        verdict: common_pb2.ResponseCode | None = None,
        arpc: bytes = b"",
        atc: AtcUse | None = None,
        conversion: books_fx.Converted | None = None,
    ) -> AuthDecision:
        """Decide once per RRN; a repeat gets the stored answer (and ARPC) back.

        ``conversion``: the scheme's conversion (billing amount and currency, rate): judged and
        held in the billing amount; the transaction amount and rate are kept beside it.

        ``atc``: the counter of an ARQC that verified: a replayed or rolled-back one is
        declined 59 (no hold, no ARPC) before anything else is judged; an accepted one is
        recorded in the card's history whatever the answer (the cryptogram is used).

        ``verdict``: the decline code of failed cryptographic checks (judged after 12/14, no
        hold). ``arpc``: the ARPC computed for the code this call expects to answer (the verdict,
        or 00); stored only when the answer is that code, else the caller may compute one for
        the actual code and :meth:`set_arpc` it.
        """
        with self._tx() as db:
            row = db.execute(
                "SELECT state, response_code, auth_code, arpc FROM authorizations WHERE rrn = ?",
                (rrn,),
            ).fetchone()
            if row is not None and row[0] != REVERSED_EARLY:
                return AuthDecision(row[1], row[2], bytes(row[3]))
            keep = bytes(arpc)
            txn_amount, txn_currency = amount, currency
            if conversion is not None:
                amount, currency = conversion.billing_minor, conversion.billing_currency
            if row is not None:  # reversed before it arrived: 12, never the expected code
                db.execute(
                    "UPDATE authorizations SET state = ?, response_code = ?, account_id = ?,"
                    " currency = ?, amount = ? WHERE rrn = ?",
                    (DECLINED, INVALID_TRANSACTION, card and card.account, currency, amount, rrn),
                )
                return AuthDecision(INVALID_TRANSACTION, fresh=True)
            if card is None:
                return self._decline(db, rrn, None, currency, amount, INVALID_CARD_NUMBER)
            if atc is not None:
                try:
                    self._use_atc(db, atc)
                except AtcRefused as exc:
                    self._decline(db, rrn, card.account, currency, amount, SUSPECTED_FRAUD)
                    return AuthDecision(SUSPECTED_FRAUD, fresh=True, atc_refused=exc.reason)
            if verdict is not None:
                return self._decline(db, rrn, card.account, currency, amount, verdict, keep)
            code = self._judge(db, card, amount, currency, presented_expiry, today)
            if code != APPROVED:
                return self._decline(db, rrn, card.account, currency, amount, code)
            auth_code = "".join(secrets.choice(_AUTH_CODE_ALPHABET) for _ in range(6))
            db.execute(
                "INSERT INTO authorizations"
                " (rrn, account_id, currency, amount, response_code, auth_code, state, arpc)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (rrn, card.account, currency, amount, APPROVED, auth_code, HELD, keep),
            )
            if conversion is not None:
                books_fx.record_auth(db, rrn, txn_amount, txn_currency, conversion)
            db.execute(
                "UPDATE accounts SET held = held + ?, open_holds = open_holds + 1 WHERE id = ?",
                (amount, card.account),
            )
            return AuthDecision(APPROVED, auth_code, keep, fresh=True)

    def _use_atc(self, db: sqlite3.Connection, use: AtcUse) -> None:
        """Record a verified cryptogram's ATC (``payswitch.atc``); AtcRefused for a replay."""
        row = db.execute(
            "SELECT highest, seen FROM card_atcs WHERE card = ?", (use.card,)
        ).fetchone()
        state = advance(None if row is None else AtcState(*row), use.atc, self.atc_window)
        db.execute(
            "INSERT INTO card_atcs (card, highest, seen) VALUES (?, ?, ?)"
            " ON CONFLICT(card) DO UPDATE SET highest = excluded.highest, seen = excluded.seen",
            (use.card, state.highest, state.seen),
        )

    def atc_states(self) -> dict[str, AtcState]:
        """Every card's ATC history (history key -> state), for the stand-in file."""
        rows = self._db.execute("SELECT card, highest, seen FROM card_atcs").fetchall()
        return {r[0]: AtcState(r[1], r[2]) for r in rows}

    def atc_state(self, card: str) -> AtcState | None:
        """A card's ATC history (tests, operators)."""
        row = self._db.execute(
            "SELECT highest, seen FROM card_atcs WHERE card = ?", (card,)
        ).fetchone()
        return None if row is None else AtcState(*row)

    def set_arpc(self, rrn: str, arpc: bytes) -> bytes:
        """Store the ARPC of a decided authorization unless one is there; return the stored."""
        with self._tx() as db:
            db.execute(
                "UPDATE authorizations SET arpc = ? WHERE rrn = ? AND length(arpc) = 0"
                " AND state != ?",
                (arpc, rrn, REVERSED_EARLY),
            )
            row = db.execute("SELECT arpc FROM authorizations WHERE rrn = ?", (rrn,)).fetchone()
            return b"" if row is None else bytes(row[0])

    @staticmethod
    def _judge(
        db: sqlite3.Connection,
        card: CardConfig,
        amount: int,
        currency: str,
        presented_expiry: str,
        today: date,
    ) -> common_pb2.ResponseCode:
        if card.status != "active":
            return DO_NOT_HONOUR
        current = yymm(today)
        if _expired(card.expiry, current) or (
            presented_expiry and _expired(presented_expiry, current)
        ):
            return EXPIRED_CARD
        if amount <= 0:
            return INVALID_AMOUNT
        acct = db.execute(
            "SELECT currency, balance + credit_limit - held FROM accounts WHERE id = ?",
            (card.account,),
        ).fetchone()
        if acct is None or currency != acct[0]:
            return INVALID_TRANSACTION
        if card.per_txn_limit is not None and amount > card.per_txn_limit:
            return EXCEEDS_AMOUNT_LIMIT
        if amount > acct[1]:
            return INSUFFICIENT_FUNDS
        return APPROVED

    @staticmethod
    def _decline(
        db: sqlite3.Connection,
        rrn: str,
        account_id: str | None,
        currency: str,
        amount: int,
        code: common_pb2.ResponseCode,
        arpc: bytes = b"",
    ) -> AuthDecision:
        db.execute(
            "INSERT INTO authorizations"
            " (rrn, account_id, currency, amount, response_code, state, arpc)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (rrn, account_id, currency, amount, code, DECLINED, arpc),
        )
        return AuthDecision(code, arpc=arpc, fresh=True)

    # -- advices ---------------------------------------------------------------------------

    @staticmethod
    def _advice_seen(db: sqlite3.Connection, kind: str, rrn: str) -> common_pb2.ResponseCode | None:
        row = db.execute(
            "SELECT response_code FROM advices WHERE kind = ? AND rrn = ?", (kind, rrn)
        ).fetchone()
        return None if row is None else row[0]

    @staticmethod
    def _advice_done(
        db: sqlite3.Connection, kind: str, rrn: str, original_rrn: str, amount: int
    ) -> common_pb2.ResponseCode:
        db.execute(
            "INSERT INTO advices (kind, rrn, original_rrn, amount, response_code)"
            " VALUES (?, ?, ?, ?, ?)",
            (kind, rrn, original_rrn, amount, APPROVED),
        )
        return APPROVED

    def reverse(self, original_rrn: str) -> common_pb2.ResponseCode:
        """Release the whole hold. Unknown RRN: acknowledge and remember (reversal first)."""
        with self._tx() as db:
            seen = self._advice_seen(db, "reversal", original_rrn)
            if seen is not None:
                return seen
            if self._take_back_refund(db, original_rrn):
                return self._advice_done(db, "reversal", original_rrn, original_rrn, 0)
            row = db.execute(
                "SELECT state, account_id, amount FROM authorizations WHERE rrn = ?",
                (original_rrn,),
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO authorizations (rrn, state) VALUES (?, ?)",
                    (original_rrn, REVERSED_EARLY),
                )
            elif row[0] == POSTED:
                return INVALID_TRANSACTION  # captured: only a refund can give money back
            elif row[0] == HELD:
                db.execute(
                    "UPDATE authorizations SET state = ? WHERE rrn = ?", (RELEASED, original_rrn)
                )
                db.execute(
                    "UPDATE accounts SET held = held - ?, open_holds = open_holds - 1 WHERE id = ?",
                    (row[2], row[1]),
                )
            # DECLINED, RELEASED or REVERSED_EARLY: nothing is held; acknowledge.
            return self._advice_done(db, "reversal", original_rrn, original_rrn, 0)

    @staticmethod
    def _take_back_refund(db: sqlite3.Connection, rrn: str) -> bool:
        """If ``rrn`` is an approved refund, undo its credit (see the module docstring)."""
        refund = db.execute(
            "SELECT original_rrn, amount FROM advices WHERE kind = 'refund' AND rrn = ?"
            " AND response_code = ?",
            (rrn, APPROVED),
        ).fetchone()
        if refund is None:
            return False
        original_rrn, amount = refund
        row = db.execute(
            "SELECT account_id FROM authorizations WHERE rrn = ?", (original_rrn,)
        ).fetchone()
        db.execute(
            "UPDATE authorizations SET refunded = refunded - ? WHERE rrn = ?",
            (amount, original_rrn),
        )
        db.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", (amount, row[0]))
        books_fx.forget_refund(db, rrn)
        return True

    def capture(
        self, original_rrn: str, amount: int, currency: str, mcc: str = ""
    ) -> common_pb2.ResponseCode:
        """Post up to the held amount and release the rest of the hold. With ``rules``, a
        capture above the hold within the MCC's tolerance, or one after the hold expired, is
        acknowledged and left for clearing to post (``issuer.books_settlement``)."""
        with self._tx() as db:
            seen = self._advice_seen(db, "capture", original_rrn)
            if seen is not None:
                return seen
            row = db.execute(
                "SELECT state, account_id, amount, currency FROM authorizations WHERE rrn = ?",
                (original_rrn,),
            ).fetchone()
            txn_amount = 0
            if row is not None and currency != row[3]:
                converted = books_fx.capture_amount(db, original_rrn, amount, currency, row[3])
                if converted is not None:  # a cross-border sale: post its billing amount
                    txn_amount, amount, currency = amount, converted.billing_minor, row[3]
            if self.rules is not None:
                reason = clearing.defer_reason(
                    db, original_rrn, row, amount, currency, mcc, self.rules, time.time()
                )
                if reason is not None:
                    clearing.record_deferred(db, original_rrn, amount, mcc, reason)
                    return self._advice_done(db, "capture", original_rrn, original_rrn, amount)
            if row is None or row[0] != HELD or currency != row[3]:
                return INVALID_TRANSACTION
            if amount <= 0 or amount > row[2]:
                return INVALID_AMOUNT
            db.execute(
                "UPDATE authorizations SET state = ?, posted = ? WHERE rrn = ?",
                (POSTED, amount, original_rrn),
            )
            db.execute(
                "UPDATE accounts SET balance = balance - ?, held = held - ?,"
                " open_holds = open_holds - 1 WHERE id = ?",
                (amount, row[2], row[1]),
            )
            if txn_amount:
                books_fx.mark_posted(db, original_rrn, txn_amount)
            return self._advice_done(db, "capture", original_rrn, original_rrn, amount)

    def refund(
        self,
        rrn: str,
        original_rrn: str,
        amount: int,
        currency: str,
        rate: Decimal | None = None,
        rate_table: str = "",
    ) -> common_pb2.ResponseCode:
        """Credit the account; all refunds of one authorization stay within what was posted.

        A refund of a converted sale in its transaction currency is converted at ``rate`` (the
        scheme's of the day; the sale's when None) and bounded in the transaction currency."""
        with self._tx() as db:
            seen = self._advice_seen(db, "refund", rrn)
            if seen is not None:
                return seen
            early = db.execute(
                "SELECT 1 FROM authorizations WHERE rrn = ? AND state = ?", (rrn, REVERSED_EARLY)
            ).fetchone()
            if early is not None:  # its reversal came first: nothing to credit
                return INVALID_TRANSACTION
            row = db.execute(
                "SELECT state, account_id, posted, refunded, currency FROM authorizations"
                " WHERE rrn = ?",
                (original_rrn,),
            ).fetchone()
            converted = None
            if row is not None and row[0] == POSTED and currency != row[4]:
                converted = books_fx.refund_amount(
                    db, original_rrn, amount, currency, row[4], rate, rate_table
                )
                if converted is None:
                    return (
                        INVALID_AMOUNT
                        if books_fx.auth_fx(db, original_rrn)
                        else (INVALID_TRANSACTION)
                    )
                books_fx.record_refund(db, rrn, original_rrn, amount, converted)
                amount, currency = converted.billing_minor, row[4]
            if row is None or row[0] != POSTED or currency != row[4]:
                return INVALID_TRANSACTION
            # A converted refund was bounded in its transaction currency; its share may round
            # to 0 in the billing currency (a later share makes up for it: fx.allocate).
            if converted is None and (amount <= 0 or row[3] + amount > row[2]):
                return INVALID_AMOUNT
            db.execute(
                "UPDATE authorizations SET refunded = refunded + ? WHERE rrn = ?",
                (amount, original_rrn),
            )
            db.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, row[1]))
            return self._advice_done(db, "refund", rrn, original_rrn, amount)

    def advise(
        self, rrn: str, card: CardConfig | None, amount: int, currency: str, auth_code: str
    ) -> common_pb2.ResponseCode:
        """Hold a stand-in approval (see the module docstring); idempotent on ``rrn``."""
        with self._tx() as db:
            seen = self._advice_seen(db, "standin", rrn)
            if seen is not None:
                return seen
            if card is None:
                return INVALID_CARD_NUMBER
            if amount <= 0:
                return INVALID_AMOUNT
            acct = db.execute(
                "SELECT currency FROM accounts WHERE id = ?", (card.account,)
            ).fetchone()
            if acct is None or acct[0] != currency:
                return INVALID_TRANSACTION
            if db.execute("SELECT 1 FROM authorizations WHERE rrn = ?", (rrn,)).fetchone():
                return INVALID_TRANSACTION
            db.execute(
                "INSERT INTO authorizations"
                " (rrn, account_id, currency, amount, response_code, auth_code, state)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (rrn, card.account, currency, amount, APPROVED, auth_code, HELD),
            )
            db.execute(
                "UPDATE accounts SET held = held + ?, open_holds = open_holds + 1 WHERE id = ?",
                (amount, card.account),
            )
            return self._advice_done(db, "standin", rrn, rrn, amount)

    # -- clearing (issuer.books_settlement) ---------------------------------------------------

    def present_all(
        self, file_id: str, presentments: Iterable[clearing.PresentmentIn], now: float
    ) -> list[clearing.PresentmentOut]:
        """Post a clearing file's presentments for this issuer in one transaction."""
        rules = self.rules or clearing.IssuerRules(hold_ttl_s=float("inf"))
        with self._tx() as db:
            out = []
            for p in presentments:
                billed = books_fx.presentment_in_billing(db, p)  # a converted sale's, else p
                result = clearing.present(db, billed, file_id, rules, now)
                if billed is not p and p.kind == "CAPTURE" and result.posted:
                    books_fx.mark_posted(db, p.rrn, p.amount)  # posted by clearing, not online
                extra = {**result.extra, "posted_currency": billed.currency}
                if billed is not p:  # converted: what the books hold for it, billing currency
                    extra["billing_minor"] = billed.amount
                out.append(replace(result, extra=extra))
            return out

    def expire_holds(self, now: float) -> list[str]:
        """Release holds that expired uncaptured; their RRNs."""
        if self.rules is None:
            return []
        with self._tx() as db:
            return clearing.expire_holds(db, self.rules, now)

    # -- chargebacks (network/chargebacks.py) -----------------------------------------------

    def raise_chargeback(
        self, chargeback_id: str, rrn: str, amount: int | None, reason_code: str, raised_at: float
    ) -> ChargebackView:
        """Charge a posted sale back: the cardholder's account is credited at once. ``amount``
        None means what is left of the sale (posted - refunded - earlier chargebacks); more than
        that, or a sale not posted, is refused (ValueError). Idempotent on ``chargeback_id``."""
        with self._tx() as db:
            known = self._chargeback(db, chargeback_id)
            if known is not None:
                return known
            row = db.execute(
                "SELECT state, account_id, posted, refunded, currency FROM authorizations"
                " WHERE rrn = ?",
                (rrn,),
            ).fetchone()
            if row is None or row[0] != POSTED:
                raise ValueError(f"rrn: {rrn} is not a posted sale of this issuer")
            charged = db.execute(
                "SELECT coalesce(sum(amount), 0) FROM chargebacks WHERE rrn = ? AND state != ?",
                (rrn, CB_REVERSED),
            ).fetchone()[0]
            left = row[2] - row[3] - charged
            amount = left if amount is None else amount
            if amount <= 0 or amount > left:
                raise ValueError(f"amount: {amount} is more than the {left} left to charge back")
            db.execute(
                "INSERT INTO chargebacks (chargeback_id, rrn, account_id, amount, currency,"
                " reason_code, raised_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (chargeback_id, rrn, row[1], amount, row[4], reason_code, raised_at, CB_RAISED),
            )
            db.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, row[1]))
            return self._chargeback(db, chargeback_id)  # type: ignore[return-value]

    def answer_representment(self, chargeback_id: str, accept: bool, at: float) -> ChargebackView:
        """The issuer's answer to a representment: accepted, the cardholder is debited again
        (the merchant wins); rejected, the chargeback stands. Idempotent once answered."""
        with self._tx() as db:
            known = self._chargeback(db, chargeback_id)
            if known is None:
                raise ValueError(f"chargeback_id: {chargeback_id} is unknown")
            if known.state != CB_RAISED:
                return known
            state = CB_REVERSED if accept else CB_UPHELD
            db.execute(
                "UPDATE chargebacks SET state = ?, responded_at = ? WHERE chargeback_id = ?",
                (state, at, chargeback_id),
            )
            if accept:
                db.execute(
                    "UPDATE accounts SET balance = balance - ? WHERE id = ?",
                    (known.amount, known.account_id),
                )
            return self._chargeback(db, chargeback_id)  # type: ignore[return-value]

    @staticmethod
    def _chargeback(db: sqlite3.Connection, chargeback_id: str) -> ChargebackView | None:
        row = db.execute(
            "SELECT chargeback_id, rrn, account_id, amount, currency, reason_code, raised_at,"
            " state, responded_at FROM chargebacks WHERE chargeback_id = ?",
            (chargeback_id,),
        ).fetchone()
        return None if row is None else ChargebackView(*row)

    def chargebacks(self) -> list[ChargebackView]:
        rows = self._db.execute(
            "SELECT chargeback_id, rrn, account_id, amount, currency, reason_code, raised_at,"
            " state, responded_at FROM chargebacks ORDER BY raised_at, chargeback_id"
        ).fetchall()
        return [ChargebackView(*r) for r in rows]

    # -- reads -----------------------------------------------------------------------------

    def applied_conversion(self, kind: str, rrn: str) -> books_fx.Converted | None:
        """What an approved capture ("capture", original RRN) or refund (its RRN) posted in
        the billing currency, for a converted sale; None otherwise."""
        return books_fx.applied(self._db, kind, rrn)

    def sale_conversion(self, rrn: str) -> books_fx.AuthFx | None:
        """A converted authorization's transaction amount, rate and table (tests, operators)."""
        return books_fx.auth_fx(self._db, rrn)

    def account(self, account_id: str) -> AccountView | None:
        row = self._db.execute(
            "SELECT id, currency, balance, credit_limit, held, open_holds FROM accounts"
            " WHERE id = ?",
            (account_id,),
        ).fetchone()
        return None if row is None else AccountView(*row)

    def hold(self, rrn: str) -> HoldView | None:
        """The hold of an approved authorization; None for unknown or declined RRNs."""
        row = self._db.execute(
            "SELECT rrn, account_id, state, amount, posted, refunded, currency"
            " FROM authorizations WHERE rrn = ?",
            (rrn,),
        ).fetchone()
        if row is None or row[2] not in _HOLD_STATES:
            return None
        return HoldView(row[0], row[1], _HOLD_STATES[row[2]], *row[3:])
