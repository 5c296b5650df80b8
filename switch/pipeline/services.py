"""What the stages and operations share: one instance per switch process."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from payswitch.world.settlement import SettlementConfig
from payswitch.world.topology import SwitchConfig
from switch.breaker import Breakers
from switch.cardsec import CardProtector
from switch.connectors import Connectors
from switch.idempotency import IdempotencyGuard
from switch.registry import TerminalRegistry
from switch.reversals import Reverser
from switch.routing import Router
from switch.saf import SafQueue
from switch.sequences import BlockSequence
from switch.standin import StandIn
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
    new_id: object = field(default=_new_id)
    breakers: Breakers | None = None  # per-acquirer circuits (None: every route admitted)
    standin: StandIn | None = None  # stand-in rules (None: no stand-in, 91 when no route)
    saf: SafQueue | None = None  # the store-and-forward queue (admin: list, replay)
    settlement: SettlementConfig = field(default_factory=SettlementConfig)
