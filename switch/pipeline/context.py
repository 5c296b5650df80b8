"""The state one authorization carries through the pipeline's stages."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from payswitch.cards import Scheme
from payswitch.v1 import network_pb2, terminal_pb2
from switch.cardsec.protector import OpenedCard
from switch.core.budget import Budget
from switch.core.idempotency import Replay
from switch.core.registry import TerminalIdentity
from switch.domain.transactions import Changes, Transaction, TxState
from switch.domain.vault import VaultWrite


@dataclass(slots=True)
class Outcome:
    """The final transition a stage decided; ``Pipeline.finish`` writes it together with the
    idempotency key's answer (one store write: "record + answer")."""

    to_state: TxState
    changes: Changes
    reverse: bool = False  # queue a reversal once recorded (the outcome is unknown)
    advise: bool = False  # queue an advice once recorded (a stand-in approval)


@dataclass(slots=True)
class AuthContext:
    request: terminal_pb2.AuthorizeRequest
    budget: Budget
    started: float  # time.monotonic() at arrival
    scheme: Scheme | None = None
    local_time: dt.datetime | None = None
    identity: TerminalIdentity | None = None
    card: OpenedCard | None = None  # decrypted card data: memory only, never stored or logged
    card_token: str = ""
    masked_pan: str = ""
    bin: str = ""
    fingerprint: str = ""
    claimed: bool = False  # this request owns its idempotency key
    replay: Replay | None = None
    vault: VaultWrite | None = None  # the sealed PAN to keep, written with the intent
    received: Transaction | None = None  # the new row, built by "receive", written by "intent"
    tx: Transaction | None = None  # the row as stored: set once it is in the store
    acquirer_ids: list[str] = field(default_factory=list)
    forwarded: bool = False  # the request may have reached the network
    result: network_pb2.NetworkAuthorizationResult | None = None
    unknown: bool = False  # forwarded, no answer: must be reversed
    no_route: bool = False  # every acquirer refused before sending: stand-in may answer
    stood_in: bool = False  # approved by the switch in stand-in (STOOD_IN)
    outcome: Outcome | None = None  # the final transition to record with the answer
    recorded: bool = False  # the outcome is in the store
    answered: bool = False  # the idempotency key is completed with the answer
    code: str = ""  # ISO 8583 response code once decided
    message: str = ""
    done: bool = False
    failed: bool = False  # a store/HSM/internal failure ended the pipeline

    def end(self, code: str, message: str = "") -> None:
        """Stop the pipeline with this response code."""
        self.code = code
        self.message = message
        self.done = True

    @property
    def key(self) -> str:
        return self.request.idempotency_key
