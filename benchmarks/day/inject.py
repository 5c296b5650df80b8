"""The injected discrepancies: a known set, seeded, that reconciliation must find exactly.

Each kind of discrepancy is a sale of a given base outcome (``BASE``) whose rows are then
altered on one side (``apply``), and the issues the cut-off and reconciliation must then list
for it (``Expected``: type, kind, RRN, as ``switch.backoffice.recon.engine`` names them):

- ``no_issuer_auth``: a captured sale the issuer has no hold or posting for: its presentment is
  rejected (REJECTED_BY_ACQUIRER, and FEE_MISMATCH where the fee table charges the sale fees:
  a rejected entry carries none) and the issuer lacks it (MISSING_AT_ISSUER);
- ``amount_mismatch``: the issuer posted less than the switch captured (AMOUNT_MISMATCH);
- ``issuer_only_posting``: a posting at the issuer the switch never had (MISSING_IN_SWITCH);
- ``duplicate``: an earlier settlement report of the acquirer already settled the sale, so
  today's settles it a second time (DUPLICATE);
- ``orphan_reversal``: the issuer applied a reversal of a sale the switch captured
  (ORPHAN_REVERSAL);
- ``chargeback_not_in_switch``: a chargeback the switch has no dispute for (MISSING_IN_SWITCH);
- ``late_presentment``: a sale authorized eight days before the cut-off, captured and batched
  only now (LATE_PRESENTMENT);
- ``standin_not_advised``: a stand-in approval the switch holds as ADVISED that the issuer has
  no advice for (MISSING_AT_ISSUER);
- ``void_not_at_issuer``: a sale voided at the switch whose hold the issuer still has
  (MISSING_AT_ISSUER, kind REVERSAL);
- ``refund_amount``: a refund the issuer credited with another amount (AMOUNT_MISMATCH).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.day.population import CardUse, Day, Injector, Page
from issuer.books import APPROVED
from issuer.books_import import BooksPage
from payswitch.settlement.fees import presentment_fees
from switch.domain.transactions import Transaction

BASE = {
    "no_issuer_auth": "full",
    "amount_mismatch": "full",
    "issuer_only_posting": "full",
    "duplicate": "full",
    "orphan_reversal": "full",
    "chargeback_not_in_switch": "full",
    "late_presentment": "full",
    "standin_not_advised": "standin_open",
    "void_not_at_issuer": "void",
    "refund_amount": "full",
}
KINDS = tuple(BASE)


@dataclass(frozen=True, slots=True)
class Expected:
    type: str
    kind: str
    rrn: str
    injected: str


def plan(count: int, per_kind: int, seed: int) -> dict[int, str]:
    """Which sale numbers carry which discrepancy: ``per_kind`` of each, among the first
    three quarters of the day's sales (so every one is written whatever the page size)."""
    sales = max(len(KINDS) * per_kind, count * 3 // 4 // 2)
    rng = random.Random(seed ^ 0x5EED)
    chosen = rng.sample(range(sales), len(KINDS) * per_kind)
    return {
        n: KINDS[i // per_kind] for i, n in enumerate(sorted(chosen, key=lambda _: rng.random()))
    }


def apply(
    day: Day, page: Page, books: BooksPage, name: str, tx: Transaction, card: CardUse
) -> tuple[Transaction, list[Transaction]]:
    """Alter the sale ``tx`` (its issuer row is the last of ``books``) as ``name`` says; the
    sale as it is now and any transaction that came with it."""
    extra: list[Transaction] = []
    expect = day.expected.append
    if name == "no_issuer_auth":
        books.auths.pop()
        books.advices.pop()
        books.move(card.account, balance=tx.captured_minor)
        expect(Expected("MISSING_AT_ISSUER", "CAPTURE", tx.rrn, name))
        expect(Expected("REJECTED_BY_ACQUIRER", "CAPTURE", tx.rrn, name))
        fees = presentment_fees(
            day.topology.fees, "CAPTURE", tx.scheme, tx.mcc, tx.currency, tx.captured_minor
        )
        if fees.interchange_minor or fees.scheme_fee_minor:  # a rejected entry carries none
            expect(Expected("FEE_MISMATCH", "CAPTURE", tx.rrn, name))
    elif name == "amount_mismatch":
        less = max(1, tx.captured_minor // 10)
        rrn, acct, cur, held, code, auth, state, posted, refunded = books.auths[-1]
        books.auths[-1] = (rrn, acct, cur, held, code, auth, state, posted - less, refunded)
        kind, a_rrn, orig, amount, a_code = books.advices[-1]
        books.advices[-1] = (kind, a_rrn, orig, amount - less, a_code)
        books.move(card.account, balance=less)
        expect(Expected("AMOUNT_MISMATCH", "CAPTURE", tx.rrn, name))
    elif name == "issuer_only_posting":
        rrn = day.next_rrn()
        amount = day.amount(card.currency)
        books.auths.append(
            (rrn, card.account, card.currency, amount, APPROVED, day.auth_code(), "POSTED",
             amount, 0)
        )  # fmt: skip
        books.advices.append(("capture", rrn, rrn, amount, APPROVED))
        books.move(card.account, balance=-amount)
        expect(Expected("MISSING_IN_SWITCH", "CAPTURE", rrn, name))
    elif name == "duplicate":
        fees = presentment_fees(
            day.topology.fees, "CAPTURE", tx.scheme, tx.mcc, tx.currency, tx.captured_minor
        )
        entry: dict[str, object] = {
            "transaction_id": tx.id,
            "rrn": tx.rrn,
            "kind": "CAPTURE",
            "amount_minor": tx.captured_minor,
            "currency": tx.currency,
            "interchange_minor": fees.interchange_minor,
            "scheme_fee_minor": fees.scheme_fee_minor,
            "status": "SETTLED",
            "reason": "",
        }
        day.prior.append((tx.acquirer_id, entry))
        expect(Expected("DUPLICATE", "CAPTURE", tx.rrn, name))
    elif name == "orphan_reversal":
        books.advices.append(("reversal", tx.rrn, tx.rrn, 0, APPROVED))
        expect(Expected("ORPHAN_REVERSAL", "REVERSAL", tx.rrn, name))
    elif name == "chargeback_not_in_switch":
        books.chargebacks.append(
            (f"CB-{tx.rrn}", tx.rrn, card.account, tx.captured_minor, tx.currency, "4853",
             tx.updated_at + 60.0, "RAISED")
        )  # fmt: skip
        books.move(card.account, balance=tx.captured_minor)
        expect(Expected("MISSING_IN_SWITCH", "CHARGEBACK", tx.rrn, name))
    elif name == "late_presentment":
        expect(Expected("LATE_PRESENTMENT", "CAPTURE", tx.rrn, name))
    elif name == "standin_not_advised":
        books.auths.pop()
        books.advices.pop()
        books.move(card.account, held=-tx.amount_minor, holds=-1)
        expect(Expected("MISSING_AT_ISSUER", "STANDIN", tx.rrn, name))
    elif name == "void_not_at_issuer":
        rrn, acct, cur, held, code, auth, _, posted, refunded = books.auths[-1]
        books.auths[-1] = (rrn, acct, cur, held, code, auth, "HELD", posted, refunded)
        books.advices.pop()
        books.move(card.account, held=held, holds=1)
        expect(Expected("MISSING_AT_ISSUER", "REVERSAL", tx.rrn, name))
    elif name == "refund_amount":
        tx, refund = day.refund(page, books, tx, card)
        kind, a_rrn, orig, amount, a_code = books.advices[-1]
        books.advices[-1] = (kind, a_rrn, orig, amount + 1, a_code)
        books.move(card.account, balance=1)
        rrn, acct, cur, held, code, auth, state, posted, refunded = books.auths[-1]
        books.auths[-1] = (rrn, acct, cur, held, code, auth, state, posted, refunded + 1)
        extra.append(refund)
        expect(Expected("AMOUNT_MISMATCH", "REFUND", refund.rrn, name))
    else:
        raise ValueError(f"unknown discrepancy {name!r}")
    return tx, extra


def write_expected(path: Path, expected: list[Expected]) -> None:
    """The expected set, sorted (type, kind, rrn), as JSON."""
    rows = sorted((asdict(e) for e in expected), key=lambda r: (r["type"], r["kind"], r["rrn"]))
    path.write_text(json.dumps({"format": "payswitch-day-expected/1", "issues": rows}, indent=1))


def read_expected(path: Path) -> set[tuple[str, str, str]]:
    doc = json.loads(Path(path).read_text())
    return {(r["type"], r["kind"], r["rrn"]) for r in doc["issues"]}


INJECTOR = Injector(BASE, apply)
