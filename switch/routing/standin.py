"""Stand-in processing (STIP): the switch approves by itself, within limits, when no route to
the issuer can take a request (every eligible acquirer's circuit open or refusing before
sending). Never after a request may have left: that is an unknown outcome, reversed.

Rules (topology ``[standin]``), in this order, first match decides:

====================================================  =====================================
``enabled = false``                                   91 issuer unavailable
card token in ``negative_tokens`` or PAN in            62 restricted card
``negative_bins``
merchant category in ``blocked_mccs``, or not in       57 transaction not permitted
``allowed_mccs`` when that list is not empty
currency without a ``floor``                           91 issuer unavailable (never stood in)
amount above the currency's ``floor``                  61 exceeds amount limit
the card as its issuer would check it, with the        14 / 91 / 62 / 54 / 05 / 59 / 55
keys and file it shares for stand-in (one HSM job,     (``switch.cardsec.standin``)
``switch.cardsec.standin``): unknown card 14, no
fresh file or key 91, blocked or lost 62, expired
54, ARQC 05, replayed ARQC 59, PIN 55, CVV2 05
the card's stand-in total in the current window        61 exceeds amount limit
would pass ``cumulative`` (a currency without a
cumulative limit uses its floor)
otherwise                                              00, state STOOD_IN, switch's auth code
====================================================  =====================================

The cumulative total is kept in the store (``Store.standin_reserve``), added atomically, so
concurrent requests and several switch processes share one limit; windows are fixed
(``window_s`` long, aligned on the Unix epoch). An approval whose recording then fails keeps
its amount counted (the switch errs on the side of less stand-in). A store failure while
checking is a store failure (96): never approve blind.

Stand-in approves only what it verified: a card on its issuer's fresh stand-in file
(``switch.cardsec.stipfiles``), active, with its PIN, CVV2 and ARQC checked when the request
carries them. Without a verifier (no HSM, a test) every card that reaches the check is 91.
The rules that need neither HSM nor store come first, so a decline by rule costs nothing.

An approval must be posted by the issuer later: the advice (``switch.recovery.advice``).
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from payswitch import codes
from payswitch.world.topology import StandInConfig
from switch.core import metrics
from switch.domain.standin import CardVerdict, StandInCard
from switch.store.base import Store

_AUTH_ALPHABET = string.ascii_uppercase + string.digits


@dataclass(frozen=True, slots=True)
class Decision:
    code: str  # ISO 8583 response code
    reason: str  # metric label and log word: approved, disabled, negative_list, mcc, ...
    auth_code: str = ""

    @property
    def approved(self) -> bool:
        return self.code == codes.APPROVED


def new_auth_code() -> str:
    """Six characters, as issuers' approval codes are; the switch's own in stand-in."""
    return "".join(secrets.choice(_AUTH_ALPHABET) for _ in range(6))


# Stand-in's verification of one card (``switch.cardsec.stipfiles.StandInVerifier``).
Verifier = Callable[[StandInCard], Awaitable[CardVerdict]]


class StandIn:
    def __init__(
        self,
        config: StandInConfig,
        store: Store,
        clock: Callable[[], float] = time.time,
        *,
        verifier: Verifier | None = None,
    ) -> None:
        self.config = config
        self._store = store
        self._clock = clock
        self._verify = verifier

    def rules(
        self, *, pan: str, card_token: str, mcc: str, amount: int, currency: str
    ) -> Decision | None:
        """The rules that need no store: a decline Decision, or None (go on to the limit)."""
        cfg = self.config
        if not cfg.enabled:
            return Decision(codes.ISSUER_UNAVAILABLE, "disabled")
        if card_token in cfg.negative_tokens or any(r.matches(pan) for r in cfg.negative_bins):
            return Decision(codes.RESTRICTED_CARD, "negative_list")
        if mcc in cfg.blocked_mccs or (cfg.allowed_mccs and mcc not in cfg.allowed_mccs):
            return Decision(codes.TRANSACTION_NOT_PERMITTED, "mcc")
        floor = cfg.floor_of(currency)
        if floor is None:
            return Decision(codes.ISSUER_UNAVAILABLE, "currency")
        if amount > floor:
            return Decision(codes.EXCEEDS_AMOUNT_LIMIT, "floor")
        return None

    async def verify(self, card: StandInCard | None) -> Decision | None:
        """The card as its issuer would check it: a decline Decision, or None (verified).
        Raises HsmError when the HSM fails (the caller answers 96)."""
        if self._verify is None or card is None:
            return Decision(codes.ISSUER_UNAVAILABLE, "no_verifier")
        verdict = await self._verify(card)
        if verdict.code is None:
            return None
        return Decision(verdict.code, verdict.reason)

    async def decide(
        self,
        *,
        pan: str,
        card_token: str,
        mcc: str,
        amount: int,
        currency: str,
        card: StandInCard | None = None,
    ) -> Decision:
        decision = self.rules(
            pan=pan, card_token=card_token, mcc=mcc, amount=amount, currency=currency
        )
        if decision is None:
            decision = await self.verify(card)
        if decision is None:
            cfg = self.config
            limit = cfg.cumulative_of(currency)
            if limit is None:
                limit = cfg.floor_of(currency) or 0
            window_start = int(self._clock()) // cfg.window_s * cfg.window_s
            if await self._store.standin_reserve(
                card_token, currency, window_start, cfg.window_s, amount, limit
            ):
                decision = Decision(codes.APPROVED, "approved", new_auth_code())
            else:
                decision = Decision(codes.EXCEEDS_AMOUNT_LIMIT, "cumulative")
        m = metrics.get()
        m.standin.labels(decision.reason).inc()
        if decision.approved:
            m.standin_amount.labels(currency).inc(amount)
        return decision
