"""Compare the three sides and list every discrepancy (pure: no I/O).

Matching key: (kind, RRN), kind CAPTURE (the sale's authorization RRN) or REFUND (the refund's
own RRN); the issuer's books are keyed by RRN too. What the switch "presented": a sale in
CAPTURED or SETTLED with a captured amount, a refund in APPROVED, CAPTURED or SETTLED. Only
presentments of transactions created at or before ``cutoff`` are expected in the reports
(later ones belong to the next cut-off); a report entry or issuer posting is matched against
every presentment the switch knows.

Issue types (one issue per (type, kind, RRN), with each side's view in ``detail``):

- MISSING_IN_SWITCH: the acquirer settled, or the issuer posted, what the switch never presented.
- MISSING_AT_ACQUIRER: the switch presented it (before the cut-off); no report has it.
- MISSING_AT_ISSUER: the switch presented it but the issuer's books do not show it posted (or a
  refund advice is missing); or the switch voided/reversed a sale the issuer still holds.
- AMOUNT_MISMATCH: amount or currency differs between the switch and the acquirer or issuer
  (a converted sale: the transaction amount with the acquirer, the billing amount with the
  issuer, so a mismatch in either currency is found).
- DUPLICATE: one presentment settled more than once (in one report or across reports).
- LATE_PRESENTMENT: settled more than ``late_after_s`` (default 7 days) after authorization.
- ORPHAN_REVERSAL: the issuer applied a reversal the switch has no reversed or voided
  transaction for (unknown RRN, or one the switch holds as approved, captured or settled).
  A refund is reversed too (the switch reverses a refund whose answer it never got): credited
  and taken back at the issuer, reversed at the switch, it is no issue; reversed at the switch
  but kept at the issuer, it is MISSING_AT_ISSUER (kind REVERSAL).
- REJECTED_BY_ACQUIRER (added): the report lists the presentment REJECTED; it was not paid.
- FEE_MISMATCH (added): the report's interchange or scheme fee differs from the fee table's
  (``switch.backoffice.settlement.fees.fee_for``, the function both sides use); only with a fee
  table.

Stand-in approvals (kind STANDIN, by RRN): the issuer's advice places the hold of the switch's
stand-in approval, so each advice is matched against the switch's stand-in transaction (in any
state a stand-in reaches: STOOD_IN, ADVISED, CAPTURED, SETTLED, or voided): an advice the switch
has no stand-in for is MISSING_IN_SWITCH, an ADVISED transaction the issuer has no advice for
is MISSING_AT_ISSUER, a different authorized amount is AMOUNT_MISMATCH. A captured stand-in
sale is then presented and matched as any CAPTURE (the issuer posts it against the advice's
hold), so a stand-in captured but lost by the issuer is a CAPTURE MISSING_AT_ISSUER.

Chargebacks (kind CHARGEBACK, matched by chargeback id, reported under the sale's RRN): one in
the issuer's books the switch has no dispute for is MISSING_IN_SWITCH, a dispute the issuer's
books lack is MISSING_AT_ISSUER, different amounts are AMOUNT_MISMATCH (only when disputes are
given).
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from payswitch import fx
from payswitch.settlement.fees import presentment_fees
from switch.backoffice.recon.sources import IssuerBooks, IssuerChargeback, Report
from switch.domain.ledger import Dispute, ReconIssue
from switch.domain.transactions import Transaction, TxState, TxType

DAY_S = 86_400
LATE_AFTER_S = 7 * DAY_S


class IssueType(enum.StrEnum):
    MISSING_IN_SWITCH = "MISSING_IN_SWITCH"
    MISSING_AT_ACQUIRER = "MISSING_AT_ACQUIRER"
    MISSING_AT_ISSUER = "MISSING_AT_ISSUER"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    DUPLICATE = "DUPLICATE"
    LATE_PRESENTMENT = "LATE_PRESENTMENT"
    ORPHAN_REVERSAL = "ORPHAN_REVERSAL"
    REJECTED_BY_ACQUIRER = "REJECTED_BY_ACQUIRER"
    FEE_MISMATCH = "FEE_MISMATCH"


_PRESENTED_SALE = (TxState.CAPTURED, TxState.SETTLED)
_PRESENTED_REFUND = (TxState.APPROVED, TxState.CAPTURED, TxState.SETTLED)
_REVERSED = (TxState.VOIDED, TxState.REVERSED, TxState.REVERSAL_PENDING)
_UNDONE = (*_REVERSED, TxState.UNKNOWN, TxState.DECLINED)  # a reversal of it is expected


@dataclass(frozen=True, slots=True)
class Presentment:
    kind: str
    rrn: str
    amount_minor: int
    currency: str
    tx: Transaction

    @property
    def at_issuer(self) -> tuple[int, str]:
        """What the issuer's books hold for it: a converted sale's billing amount and currency
        (issue 16: a mismatch in either currency is found), else the amount itself."""
        tx = self.tx
        if not tx.billing_currency:
            return self.amount_minor, self.currency
        billed = tx.billing_captured_minor if self.kind == "CAPTURE" else tx.billing_minor
        return billed, tx.billing_currency


def presentments(txs: list[Transaction]) -> dict[tuple[str, str], Presentment]:
    out = {}
    for tx in txs:
        if tx.type is TxType.AUTHORIZATION and tx.state in _PRESENTED_SALE and tx.captured_minor:
            out[("CAPTURE", tx.rrn)] = Presentment(
                "CAPTURE", tx.rrn, tx.captured_minor, tx.currency, tx
            )
        elif tx.type is TxType.REFUND and tx.state in _PRESENTED_REFUND:
            out[("REFUND", tx.rrn)] = Presentment(
                "REFUND", tx.rrn, tx.amount_minor, tx.currency, tx
            )
    return out


def issue_id(type_: str, kind: str, rrn: str) -> str:
    return hashlib.sha256(f"{type_}|{kind}|{rrn}".encode()).hexdigest()[:20]


@dataclass
class _Found:
    type: IssueType
    kind: str
    rrn: str
    transaction_id: str = ""
    currency: str = ""
    sources: list[str] = field(default_factory=list)  # detail["sources"]
    detail: dict[str, object] = field(default_factory=dict)


class _Issues:
    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str, str], _Found] = {}

    def add(
        self,
        type_: IssueType,
        kind: str,
        rrn: str,
        tx_id: str = "",
        currency: str = "",
        *,
        source: str = "",
        **detail: object,
    ) -> None:
        key = (type_.value, kind, rrn)
        found = self.by_key.setdefault(key, _Found(type_, kind, rrn))
        found.transaction_id = found.transaction_id or tx_id
        found.currency = found.currency or currency
        if source and source not in found.sources:
            found.sources.append(source)
        found.detail.update(detail)

    def issues(self) -> list[ReconIssue]:
        out = []
        for (t, kind, rrn), f in sorted(self.by_key.items()):
            out.append(
                ReconIssue(
                    issue_id(t, kind, rrn),
                    t,
                    kind,
                    rrn,
                    f.transaction_id,
                    f.currency,
                    json.dumps({"sources": f.sources, **f.detail}, sort_keys=True),
                )
            )
        return out


def reconcile(
    txs: list[Transaction],
    reports: list[Report],
    books: IssuerBooks | None,
    *,
    cutoff: float,
    fee_table: Sequence[Any] | None = None,
    late_after_s: float = LATE_AFTER_S,
    disputes: list[Dispute] | None = None,
) -> list[ReconIssue]:
    issues = _Issues()
    presented = presentments(txs)
    by_rrn = {tx.rrn: tx for tx in txs if tx.type is TxType.AUTHORIZATION}
    _acquirer(issues, presented, reports, cutoff, fee_table, late_after_s)
    if books is not None:
        _issuer(issues, presented, by_rrn, txs, books)
        if disputes is not None:
            _chargebacks(issues, books, disputes, by_rrn)
    return issues.issues()


def _switch_view(cb: IssuerChargeback, sale: Transaction | None) -> tuple[int, str]:
    """The issuer's chargeback as the switch keeps it: a converted sale's, in the billing
    currency, converted back into the sale's currency (``fx.convert_back``)."""
    if sale is None or not sale.billing_currency or cb.currency != sale.billing_currency:
        return cb.amount, cb.currency
    try:
        back = fx.convert_back(cb.amount, sale.billing_captured_minor, sale.captured_minor)
    except fx.FxError:
        return cb.amount, cb.currency  # more than was billed: it cannot match
    return back, sale.currency


def _chargebacks(
    issues: _Issues, books: IssuerBooks, disputes: list[Dispute], by_rrn: dict[str, Transaction]
) -> None:
    ours = {d.dispute_id: d for d in disputes}
    theirs = {c.chargeback_id: c for c in books.chargebacks}
    for cb_id, cb in theirs.items():
        d = ours.get(cb_id)
        if d is None:
            issues.add(
                IssueType.MISSING_IN_SWITCH,
                "CHARGEBACK",
                cb.rrn,
                "",
                cb.currency,
                source="issuer",
                chargeback_id=cb_id,
                issuer_minor=cb.amount,
            )
        elif (d.amount_minor, d.currency) != _switch_view(cb, by_rrn.get(cb.rrn)):
            issues.add(
                IssueType.AMOUNT_MISMATCH,
                "CHARGEBACK",
                cb.rrn,
                d.transaction_id,
                d.currency,
                source="issuer",
                chargeback_id=cb_id,
                switch_minor=d.amount_minor,
                issuer_minor=cb.amount,
            )
    for cb_id, d in ours.items():
        if cb_id not in theirs:
            issues.add(
                IssueType.MISSING_AT_ISSUER,
                "CHARGEBACK",
                d.rrn,
                d.transaction_id,
                d.currency,
                source="issuer",
                chargeback_id=cb_id,
                switch_minor=d.amount_minor,
            )


def _acquirer(
    issues: _Issues,
    presented: dict[tuple[str, str], Presentment],
    reports: list[Report],
    cutoff: float,
    fee_table: Sequence[Any] | None,
    late_after_s: float,
) -> None:
    settled: dict[tuple[str, str], list[tuple[Report, dict[str, Any]]]] = defaultdict(list)
    for report in reports:
        for entry in report.get("entries", []):
            settled[(entry["kind"], entry["rrn"])].append((report, entry))
    p: Presentment | None
    for key, p in presented.items():
        if key not in settled and p.tx.created_at <= cutoff:
            issues.add(
                IssueType.MISSING_AT_ACQUIRER,
                p.kind,
                p.rrn,
                p.tx.id,
                p.currency,
                source="acquirer",
                switch_minor=p.amount_minor,
            )
    for (kind, rrn), found in settled.items():
        report, entry = found[0]
        tx_id, currency = entry.get("transaction_id", ""), entry.get("currency", "")
        if len(found) > 1:
            issues.add(
                IssueType.DUPLICATE,
                kind,
                rrn,
                tx_id,
                currency,
                source="acquirer",
                count=len(found),
                file_ids=[r.get("file_id") for r, _ in found],
            )
        p = presented.get((kind, rrn))
        if p is None:
            issues.add(
                IssueType.MISSING_IN_SWITCH,
                kind,
                rrn,
                tx_id,
                currency,
                source="acquirer",
                acquirer_minor=entry["amount_minor"],
            )
            continue
        if (entry["amount_minor"], currency) != (p.amount_minor, p.currency):
            issues.add(
                IssueType.AMOUNT_MISMATCH,
                kind,
                rrn,
                p.tx.id,
                p.currency,
                source="acquirer",
                switch_minor=p.amount_minor,
                acquirer_minor=entry["amount_minor"],
                acquirer_currency=currency,
            )
        if entry.get("status") == "REJECTED":
            issues.add(
                IssueType.REJECTED_BY_ACQUIRER,
                kind,
                rrn,
                p.tx.id,
                p.currency,
                source="acquirer",
                reason=entry.get("reason", ""),
            )
        if float(report.get("settled_at", 0)) - p.tx.created_at > late_after_s:
            days = (float(report["settled_at"]) - p.tx.created_at) / DAY_S
            issues.add(
                IssueType.LATE_PRESENTMENT,
                kind,
                rrn,
                p.tx.id,
                p.currency,
                source="acquirer",
                days_after_authorization=round(days, 1),
            )
        if fee_table is not None:
            _fees(issues, p, entry, fee_table)


def _fees(issues: _Issues, p: Presentment, entry: dict[str, Any], fee_table: Sequence[Any]) -> None:
    got = (entry.get("interchange_minor", 0), entry.get("scheme_fee_minor", 0))
    fees = presentment_fees(fee_table, p.kind, p.tx.scheme, p.tx.mcc, p.currency, p.amount_minor)
    if got != (fees.interchange_minor, fees.scheme_fee_minor):
        issues.add(
            IssueType.FEE_MISMATCH,
            p.kind,
            p.rrn,
            p.tx.id,
            p.currency,
            source="acquirer",
            expected=[fees.interchange_minor, fees.scheme_fee_minor],
            acquirer=list(got),
        )


def _issuer(
    issues: _Issues,
    presented: dict[tuple[str, str], Presentment],
    by_rrn: dict[str, Transaction],
    txs: list[Transaction],
    books: IssuerBooks,
) -> None:
    for (kind, rrn), p in presented.items():
        if kind == "CAPTURE":
            auth = books.auths.get(rrn)
            if auth is None or auth.state != "POSTED":
                issues.add(
                    IssueType.MISSING_AT_ISSUER,
                    kind,
                    rrn,
                    p.tx.id,
                    p.currency,
                    source="issuer",
                    issuer_state=auth.state if auth else "",
                )
            elif (auth.posted, auth.currency) != p.at_issuer:
                issues.add(
                    IssueType.AMOUNT_MISMATCH,
                    kind,
                    rrn,
                    p.tx.id,
                    p.at_issuer[1],
                    source="issuer",
                    switch_minor=p.at_issuer[0],
                    issuer_minor=auth.posted,
                )
        else:
            advice = books.refund(rrn)
            if advice is None:
                issues.add(
                    IssueType.MISSING_AT_ISSUER, kind, rrn, p.tx.id, p.currency, source="issuer"
                )
            elif advice.amount != p.at_issuer[0]:
                issues.add(
                    IssueType.AMOUNT_MISMATCH,
                    kind,
                    rrn,
                    p.tx.id,
                    p.at_issuer[1],
                    source="issuer",
                    switch_minor=p.at_issuer[0],
                    issuer_minor=advice.amount,
                )
    refunds = {tx.rrn: tx for tx in txs if tx.type is TxType.REFUND}
    credited = {a.rrn for a in books.advices if a.kind == "refund"}
    taken_back = {a.original_rrn for a in books.advices if a.kind == "reversal"}
    tx: Transaction | None
    for tx in txs:
        if (
            tx.type is TxType.REFUND
            and tx.state in _REVERSED
            and tx.rrn in credited
            and tx.rrn not in taken_back
        ):  # the switch reversed a refund the issuer credited and kept
            issues.add(
                IssueType.MISSING_AT_ISSUER, "REVERSAL", tx.rrn, tx.id, tx.currency, source="issuer"
            )
        if tx.type is TxType.AUTHORIZATION and tx.state in _REVERSED:
            auth = books.auths.get(tx.rrn)
            if auth is not None and auth.state in ("HELD", "POSTED"):
                issues.add(
                    IssueType.MISSING_AT_ISSUER,
                    "REVERSAL",
                    tx.rrn,
                    tx.id,
                    tx.currency,
                    source="issuer",
                    issuer_state=auth.state,
                )
    _standins(issues, by_rrn, books)
    for auth in books.auths.values():
        if auth.state == "POSTED" and ("CAPTURE", auth.rrn) not in presented:
            tx = by_rrn.get(auth.rrn)
            issues.add(
                IssueType.MISSING_IN_SWITCH,
                "CAPTURE",
                auth.rrn,
                tx.id if tx else "",
                auth.currency,
                source="issuer",
                issuer_minor=auth.posted,
                switch_state=tx.state.value if tx else "",
            )
    for advice in books.advices:
        if advice.kind == "refund" and ("REFUND", advice.rrn) not in presented:
            tx = refunds.get(advice.rrn)
            if tx is not None and tx.state in _UNDONE and advice.rrn in taken_back:
                continue  # credited, then taken back by the switch's reversal: nothing owed
            if tx is not None and tx.state in _REVERSED:
                continue  # kept at the issuer: MISSING_AT_ISSUER REVERSAL above says so
            issues.add(
                IssueType.MISSING_IN_SWITCH,
                "REFUND",
                advice.rrn,
                "",
                "",
                source="issuer",
                issuer_minor=advice.amount,
            )
        elif advice.kind == "reversal":
            tx = by_rrn.get(advice.original_rrn) or refunds.get(advice.original_rrn)
            if tx is None or tx.state not in _UNDONE:
                issues.add(
                    IssueType.ORPHAN_REVERSAL,
                    "REVERSAL",
                    advice.original_rrn,
                    tx.id if tx else "",
                    tx.currency if tx else "",
                    source="issuer",
                    switch_state=tx.state.value if tx else "",
                )


# Every state a stand-in approval can be in once the issuer may have its advice.
_STOOD_IN = (
    TxState.STOOD_IN,
    TxState.ADVISED,
    TxState.CAPTURED,
    TxState.SETTLED,
    *_REVERSED,
)


def _standins(issues: _Issues, by_rrn: dict[str, Transaction], books: IssuerBooks) -> None:
    """Stand-in approvals (kind STANDIN): the issuer's advice (its hold) against the switch's
    stand-in transaction; a captured one is matched as a presentment besides."""
    advised = {a.rrn: a for a in books.advices if a.kind == "standin"}
    for rrn, advice in advised.items():
        tx = by_rrn.get(rrn)
        if tx is None or tx.state not in _STOOD_IN:
            issues.add(
                IssueType.MISSING_IN_SWITCH,
                "STANDIN",
                rrn,
                tx.id if tx else "",
                tx.currency if tx else "",
                source="issuer",
                issuer_minor=advice.amount,
                switch_state=tx.state.value if tx else "",
            )
        elif advice.amount != tx.amount_minor:
            issues.add(
                IssueType.AMOUNT_MISMATCH,
                "STANDIN",
                rrn,
                tx.id,
                tx.currency,
                source="issuer",
                switch_minor=tx.amount_minor,
                issuer_minor=advice.amount,
            )
    for tx in by_rrn.values():
        if tx.state is TxState.ADVISED and tx.rrn not in advised:
            issues.add(
                IssueType.MISSING_AT_ISSUER,
                "STANDIN",
                tx.rrn,
                tx.id,
                tx.currency,
                source="issuer",
                switch_minor=tx.amount_minor,
            )
