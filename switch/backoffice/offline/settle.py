"""Settle one uploaded offline sale: verify, claim, audit its allowance, raise cases, pay.

1. The pair is checked as the terminal should have (``payswitch.offline.checks``) with every
   key ever published and the revocations the terminal had at its sync. A failure there is the
   merchant's: a case, nothing paid, and *no claim*, so a forged, replayed or altered entry can
   never take a counter from the real spend.
2. A valid spend claims its (allowance, counter), first writer wins. NEW and SAME (the same
   bytes again: an upload repeated or resumed) go on; CONFLICT is a cloned device: a case with
   both spends as evidence.
3. The allowance is audited whole on every settle, so the verdict does not depend on the order
   uploads arrive in: each claim's ``prev_hash`` must be its predecessor's digest (counter 1:
   the allowance's genesis), and the amounts up to each counter within the cumulative cap. A
   claim failing either is a case (cardholder). Case ids derive from the spend and the
   problem, so auditing again records nothing twice.
4. Every device-signed spend that passed the terminal's rules is paid once (``Payer`` keyed by
   the spend's digest): within the allowance from the issuer's hold, beyond it (a cloned
   device's extra spends) charged to the cardholder's account, which is the rule: the first
   claim is paid from the hold, a later claim is the cardholder's.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from payswitch.offline.checks import Liability, Problem, check, liability
from payswitch.offline.formats import Allowance, Signed, Spend
from switch.backoffice.offline.trust import TrustBook
from switch.domain.offline import ClaimOutcome, OfflineCase, OfflineClaim
from switch.store.base import Store


@dataclass(frozen=True, slots=True)
class Upload:
    """One journal entry as a terminal uploads it."""

    terminal_id: str
    merchant_id: str
    seq: int
    allowance: Signed
    spend: Signed
    trust_version: int


@dataclass(frozen=True, slots=True)
class Payment:
    """What the issuer is told (an advice): pay ``amount`` to the merchant for this spend."""

    key: str  # the spend's digest: one payment per spend, however often it is uploaded
    issuer: str
    card_token: str
    allowance_id: str
    counter: int
    amount: int
    currency: str
    merchant_id: str
    terminal_id: str
    beyond_allowance: bool  # charged to the cardholder's account, not the hold


@dataclass(frozen=True, slots=True)
class Settled:
    seq: int
    accepted: bool  # paid (from the hold or by the cardholder)
    repeated: bool  # this spend was claimed before (the upload was repeated)
    problems: tuple[str, ...]
    case_ids: tuple[str, ...]


Payer = Callable[[Payment], Awaitable[None]]


def _case_id(digest: str, problem: str) -> str:
    return hashlib.sha256(f"{digest}|{problem}".encode()).hexdigest()[:32]


class OfflineSettlement:
    def __init__(
        self, store: Store, book: TrustBook, pay: Payer, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.book = book
        self.pay = pay
        self.clock = clock

    async def settle(self, up: Upload) -> Settled:
        checked = check(
            up.allowance,
            up.spend,
            self.book.as_of(up.trust_version),
            terminal_id=up.terminal_id,
            merchant_id=up.merchant_id,
        )
        a, s = checked.allowance, checked.spend
        if checked.problems or a is None or s is None:
            case = await self._merchant_case(up, a, s, checked.problems)
            return Settled(up.seq, False, False, tuple(checked.problems), (case,))
        digest = s.digest().hex()
        claim = OfflineClaim(
            a.allowance_id, s.counter, digest, up.terminal_id, s.amount, s.prev_hash.hex(),
            self.clock(),
        )  # fmt: skip
        claimed = await self.store.claim_offline_spend(claim)
        cases: list[str] = []
        problems: list[str] = []
        if claimed.outcome is ClaimOutcome.CONFLICT:
            problems.append(Problem.DUPLICATE_COUNTER)
            cases.append(
                await self._case(
                    digest, Problem.DUPLICATE_COUNTER, a, s, up.terminal_id,
                    {"spend": up.spend.body.decode(), "spend_signature": up.spend.signature.hex(),
                     "first_claim": {"digest": claimed.holder.digest,
                                     "terminal_id": claimed.holder.terminal_id,
                                     "claimed_at": claimed.holder.claimed_at}},
                )
            )  # fmt: skip
        audit = await self._audit(a)
        for problem, flagged in audit:
            if flagged.digest == digest:
                problems.append(problem)
            cases.append(
                await self._case(
                    flagged.digest, problem, a, None, flagged.terminal_id,
                    {"claim": {"counter": flagged.counter, "digest": flagged.digest,
                               "prev_hash": flagged.prev_hash, "amount": flagged.amount,
                               "terminal_id": flagged.terminal_id}},
                    counter=flagged.counter, amount=flagged.amount,
                )
            )  # fmt: skip
        mine = [c for p, c in audit if c.digest == digest]
        await self.pay(
            Payment(
                digest, a.issuer, a.card_token, a.allowance_id, s.counter, s.amount, s.currency,
                up.merchant_id, up.terminal_id,
                beyond_allowance=claimed.outcome is ClaimOutcome.CONFLICT or bool(mine),
            )
        )  # fmt: skip
        repeated = claimed.outcome is ClaimOutcome.SAME
        return Settled(up.seq, True, repeated, tuple(problems), tuple(dict.fromkeys(cases)))

    async def _audit(self, a: Allowance) -> list[tuple[Problem, OfflineClaim]]:
        """Every claim of ``a`` whose link or running total is wrong."""
        claims = await self.store.offline_claims(a.allowance_id)
        by_counter = {c.counter: c for c in claims}
        found: list[tuple[Problem, OfflineClaim]] = []
        total = 0
        for c in claims:
            total += c.amount
            if c.counter == 1:
                expected: str | None = a.genesis().hex()
            else:
                pred = by_counter.get(c.counter - 1)
                expected = pred.digest if pred is not None else None
            if expected is not None and c.prev_hash != expected:
                found.append((Problem.BROKEN_CHAIN, c))
            if total > a.cumulative_cap:
                found.append((Problem.CUMULATIVE_CAP, c))
        return found

    async def _merchant_case(
        self, up: Upload, a: Allowance | None, s: Spend | None, problems: list[Problem]
    ) -> str:
        digest = hashlib.sha256(up.spend.body + up.spend.signature).hexdigest()
        evidence = {
            "allowance": up.allowance.body.decode("ascii", "replace"),
            "allowance_signature": up.allowance.signature.hex(),
            "spend": up.spend.body.decode("ascii", "replace"),
            "spend_signature": up.spend.signature.hex(),
            "uploaded_by": up.terminal_id,
            "journal_seq": up.seq,
            "trust_version": up.trust_version,
        }
        case = OfflineCase(
            _case_id(digest, ",".join(problems)),
            a.allowance_id if a else "unknown",
            s.counter if s else 0,
            digest,
            up.terminal_id,
            tuple(p.value for p in problems),
            liability(problems).value,
            False,
            s.amount if s else 0,
            s.currency if s else (a.currency if a else "XXX"),
            json.dumps(evidence, sort_keys=True),
            self.clock(),
        )
        await self.store.record_offline_case(case)
        return case.case_id

    async def _case(
        self,
        digest: str,
        problem: Problem,
        a: Allowance,
        s: Spend | None,
        terminal_id: str,
        evidence: dict[str, object],
        *,
        counter: int | None = None,
        amount: int | None = None,
    ) -> str:
        case = OfflineCase(
            _case_id(digest, problem.value),
            a.allowance_id,
            counter if counter is not None else (s.counter if s else 0),
            digest,
            terminal_id,
            (problem.value,),
            Liability.CARDHOLDER.value,
            True,
            amount if amount is not None else (s.amount if s else 0),
            a.currency,
            json.dumps({"allowance": a.canonical().decode(), **evidence}, sort_keys=True),
            self.clock(),
        )
        await self.store.record_offline_case(case)
        return case.case_id
