"""The state one authorization carries through the pipeline's stages."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
from dataclasses import dataclass, field

from payswitch.cards import Scheme
from payswitch.fx import DccOffer
from payswitch.v1 import network_pb2, terminal_pb2
from switch.cardsec.protector import OpenedCard, Routes
from switch.core.budget import Budget
from switch.core.idempotency import KeyHold, Replay
from switch.core.registry import TerminalIdentity
from switch.domain.risk import Observing
from switch.domain.transactions import Changes, Transaction, TxState
from switch.domain.vault import VaultWrite
from switch.risk.engine import Decision as RiskDecision
from switch.risk.facts import Facts as RiskFacts
from switch.routing.standin import Decision


class Delivery(enum.Enum):
    """How far the request got towards the issuer (decides whether it must be reversed)."""

    NOT_SENT = "not_sent"  # nothing left the switch
    SENDING = "sending"  # handed to a connector: it may have left
    ANSWERED = "answered"  # the issuer's answer is in ``result``
    UNKNOWN = "unknown"  # it may have reached the issuer, no answer: must be reversed
    NO_ROUTE = "no_route"  # every acquirer refused before sending: stand-in may answer

    @property
    def may_have_left(self) -> bool:
        return self in (Delivery.SENDING, Delivery.ANSWERED, Delivery.UNKNOWN)


@dataclass(slots=True)
class Outcome:
    """The final transition of the stored authorization (``switch.pipeline.outcome.decide``);
    ``Pipeline.finish`` writes it together with the idempotency key's answer (one store
    write: "record + answer")."""

    to_state: TxState
    changes: Changes
    reverse: bool = False  # queue a reversal once recorded (the outcome is unknown)
    advise: bool = False  # queue an advice once recorded (a stand-in approval)


@dataclass(slots=True)
class AuthContext:
    request: terminal_pb2.AuthorizeRequest
    budget: Budget
    started: float  # time.monotonic() at arrival
    peer: str | None = None  # the client certificate's terminal id (mTLS), for admission
    address: str = ""  # the terminal's network address as seen here (risk signals)
    scheme: Scheme | None = None
    local_time: dt.datetime | None = None
    identity: TerminalIdentity | None = None
    routes: Routes = field(default_factory=dict)  # the merchant's acquirers by card scheme
    card: OpenedCard | None = None  # decrypted card data: memory only, never stored or logged
    card_token: str = ""
    masked_pan: str = ""
    bin: str = ""
    fingerprint: str = ""
    hold: KeyHold | None = None  # this request owns its idempotency key
    replay: Replay | None = None
    vault: VaultWrite | None = None  # the sealed PAN to keep, written with the intent
    received: Transaction | None = None  # the new row, built by "receive", written by "intent"
    tx: Transaction | None = None  # the row as stored: set once it is in the store
    acquirer_ids: list[str] = field(default_factory=list)
    delivery: Delivery = Delivery.NOT_SENT
    result: network_pb2.NetworkAuthorizationResult | None = None
    standin: Decision | None = None  # the stand-in rules' decision, when no route
    risk: RiskDecision | None = None  # the risk stage's decision
    risk_facts: RiskFacts | None = None  # what the risk stage counted (outcome added later)
    # The request's facts and its observation, made by the intent's write (``Intent``).
    risk_seen: tuple[RiskFacts, Observing] | None = None
    risk_kept: asyncio.Task[None] | None = None  # the decision's write, awaited before the answer
    dcc: DccOffer | None = None  # the DCC offer the cardholder accepted (issue 16), re-quoted
    outcome: Outcome | None = None  # the final transition to record with the answer
    recorded: bool = False  # the outcome is in the store
    code: str = ""  # ISO 8583 response code once decided
    message: str = ""
    done: bool = False
    failed: bool = False  # a store/HSM/internal failure ended the pipeline
    downstream_s: float = 0.0  # time spent waiting for acquirers (not the switch's own work)

    def end(self, code: str, message: str = "") -> None:
        """Stop the pipeline with this response code."""
        self.code = code
        self.message = message
        self.done = True

    @property
    def key(self) -> str:
        return self.request.idempotency_key

    @property
    def stood_in(self) -> bool:
        """Approved by the switch in stand-in (recorded STOOD_IN)."""
        return self.outcome is not None and self.outcome.to_state is TxState.STOOD_IN
