"""An advice the issuer refuses becomes a case for operators, with who bears the loss.

The merchant was told 00 in stand-in and keeps it; the issuer has answered the advice with a
refusal (14 card not on file, 12 another currency than the account's or an RRN it knows, 13
...). Sending it again would get the same answer, so the advice is not retried (its item is
dead-lettered at once, ``switch.recovery.saf.Refused``) and a case is recorded among the
reconciliation issues (type ``ADVICE_REFUSED``, kind ``STANDIN``; ``payswitch-recon list``),
with its evidence: transaction id, RRN, amount and currency, the switch's auth code, the
issuer's answer and who answered, the acquirer that carried it. Never card data.

Liability (``detail.liable``), as card networks' stand-in rules put it: a stand-in approved
within what the issuer published for stand-in is the issuer's; anything else is the
network's. The switch's stand-in approves only cards it verified against the issuer's fresh
stand-in file (on file, active; PIN, CVV2 and ARQC with the issuer's shared keys), so:

- 14 (the issuer says the card is not on file) or 62 (restricted): its own file said the
  card was on file and active: ``issuer`` liable; the case is the network's claim on it (the
  issuer is to post the sale).
- any other refusal (12 another currency, 13 ...): what the file does not publish (account
  currency, amounts) was the switch's judgement: ``switch`` liable; it bears the sale.

An operator resolves the case (``payswitch-recon resolve``) and, when the issuer agrees to
post it, replays the dead letter (``payswitch-admin saf replay ADVICE:<id>``).
"""

from __future__ import annotations

import hashlib
import json

from payswitch import codes
from switch.domain.ledger import ReconIssue
from switch.domain.transactions import Transaction

CASE_TYPE = "ADVICE_REFUSED"
CASE_KIND = "STANDIN"
ISSUER_LIABLE = frozenset({codes.INVALID_CARD_NUMBER, codes.RESTRICTED_CARD})
# Answers that say the issuer could not decide (not a refusal): the advice is retried.
TRANSIENT = frozenset({codes.ISSUER_UNAVAILABLE, codes.SYSTEM_MALFUNCTION, ""})


def liable(issuer_answer: str) -> str:
    return "issuer" if issuer_answer in ISSUER_LIABLE else "switch"


def case_id(rrn: str) -> str:
    """Stable per stood-in authorization (as reconciliation derives its issue ids)."""
    return hashlib.sha256(f"{CASE_TYPE}|{CASE_KIND}|{rrn}".encode()).hexdigest()[:20]


def refused_advice(
    tx: Transaction, issuer_answer: str, responder: str, acquirer_id: str
) -> ReconIssue:
    detail = {
        "issuer": responder,
        "issuer_answer": issuer_answer,
        "acquirer": acquirer_id,
        "amount_minor": tx.amount_minor,
        "auth_code": tx.auth_code,
        "state": str(tx.state),
        "liable": liable(issuer_answer),
    }
    return ReconIssue(
        case_id(tx.rrn),
        CASE_TYPE,
        CASE_KIND,
        tx.rrn,
        tx.id,
        tx.currency,
        json.dumps(detail, sort_keys=True),
    )
