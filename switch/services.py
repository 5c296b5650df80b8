"""What the stages and operations share: one instance per switch process."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from payswitch.world.settlement import SettlementConfig
from payswitch.world.topology import SwitchConfig
from switch.cardsec.protector import CardProtector
from switch.core.admission import Admission
from switch.core.concurrency import LimitSettings
from switch.core.dcc import DccDesk
from switch.core.idempotency import IdempotencyGuard
from switch.core.registry import TerminalRegistry
from switch.core.sequences import BlockSequence
from switch.recovery.reversals import Reverser
from switch.recovery.saf import SafQueue
from switch.risk.engine import RiskEngine
from switch.routing.breakers import Breakers
from switch.routing.connectors import Connectors
from switch.routing.router import Router
from switch.routing.standin import StandIn
from switch.store.base import Store


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass(slots=True)
class Services:
    config: SwitchConfig
    store: Store
    guard: IdempotencyGuard
    protector: CardProtector
    registry: TerminalRegistry
    router: Router
    connectors: Connectors
    reverser: Reverser
    rrns: BlockSequence
    new_id: Callable[[], str] = field(default=_new_id)
    breakers: Breakers | None = None  # per-acquirer circuits (None: every route admitted)
    standin: StandIn | None = None  # stand-in rules (None: no stand-in, 91 when no route)
    saf: SafQueue | None = None  # the store-and-forward queue (admin: list, replay)
    risk: RiskEngine | None = None  # the risk stage's engine (None: no risk stage)
    settlement: SettlementConfig = field(default_factory=SettlementConfig)
    admission: Admission | None = None  # None: built from the config (``[switch] tls`` etc.)
    dcc: DccDesk | None = None  # DCC offers (issue 16; None: none offered)

    def __post_init__(self) -> None:
        if self.admission is None:
            cfg = self.config
            self.admission = Admission(
                self.registry,
                tls=cfg.tls,
                max_in_flight=cfg.max_in_flight,
                rate_per_s=cfg.terminal_rate_per_s,
                burst=cfg.terminal_burst,
                limits=LimitSettings.of(cfg),
            )

    @property
    def gate(self) -> Admission:
        """The process's admission (always set once constructed)."""
        assert self.admission is not None
        return self.admission
