"""What one seed does, decided up front from the seed alone: the payments (terminal, card,
amount, what happens after the approval, how often the terminal resends) and the fault
schedule (which node misbehaves how, when the switch is killed, which node restarts).

Everything random in a harness run is drawn here or from generators seeded from here, so a
seed names a scenario. What stays nondeterministic is the interleaving of real processes in
real time (which request a node's draw falls on, how far a killed switch got), which is the
point of running many seeds.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

from payswitch.v1 import common_pb2, control_pb2


@dataclass(frozen=True, slots=True)
class Card:
    pan: str
    expiry: str
    currency: str
    issuer: str
    weight: int
    max_minor: int


# Cards of topology/default.toml. Declining cards are in the mix on purpose: a decline must
# leave no hold, however the network misbehaves.
CARDS: tuple[Card, ...] = (
    Card("4111111111111111", "2812", "EUR", "bank-a", 30, 5_000),  # approves
    Card("5555555555554444", "2906", "EUR", "bank-b", 20, 5_000),  # credit card, approves
    Card("378282246310005", "2903", "EUR", "bank-c", 10, 5_000),  # amex, approves
    Card("6011111111111117", "2903", "EUR", "bank-c", 10, 5_000),  # discover, approves
    Card("2223000048400011", "2906", "USD", "bank-b", 8, 5_000),  # USD account, approves
    Card("4000000000000002", "2812", "EUR", "bank-a", 8, 3_000),  # 51 above 15.00
    Card("4000000000000119", "2812", "EUR", "bank-a", 5, 2_000),  # 05 blocked
    Card("4012888888881881", "2812", "EUR", "bank-a", 4, 2_000),  # 14 not on file
    Card("4242424242424242", "2812", "EUR", "bank-a", 5, 15_000),  # 61 above 100.00
)

# (terminal, merchant) of topology/default.toml; T-0003's merchant routes to acq-beta only
# (an acq-beta outage sends its sales to stand-in). The harness makes M-FUEL's MCC a tolerance
# MCC (pay-at-pump completions), so its terminal's captures may go above the hold: tips.
TIP_MERCHANTS = frozenset({"M-FUEL"})
TIP_PCT = 20  # [settlement] capture_tolerance_pct
TERMINALS: tuple[tuple[str, str], ...] = (
    ("T-0001", "M-GROCER"),
    ("T-0002", "M-GROCER"),
    ("T-0003", "M-FUEL"),
)
ACQUIRERS = ("acq-alpha", "acq-beta")
SCHEMES = ("visanet", "banknet", "globalnet")
ISSUERS = ("bank-a", "bank-b", "bank-c")


class Lifecycle(enum.StrEnum):
    """What the terminal does with an approval."""

    CAPTURE = "capture"  # capture in full
    PARTIAL = "partial"  # capture part; the issuer releases the rest of the hold
    TIP = "tip"  # capture above the hold, within the tolerance (at a tolerance MCC's terminal)
    REFUND = "refund"  # capture in full, then refund part or all once the network is calm
    VOID = "void"  # cancel before capture: a full reversal
    KEEP = "keep"  # leave it authorized (its hold stays open through the cut-off)


@dataclass(frozen=True, slots=True)
class Payment:
    index: int
    terminal_id: str
    merchant_id: str
    card: Card
    amount_minor: int
    lifecycle: Lifecycle
    capture_minor: int  # for CAPTURE/PARTIAL/TIP/REFUND
    refund_minor: int  # for REFUND: at most the capture
    resends: int  # extra sends of the same request after the first answer (idempotency)
    concurrent: bool  # the first resend races the first send instead of following it


class Action(enum.StrEnum):
    SET_FAULTS = "set_faults"
    CLEAR_FAULTS = "clear_faults"
    KILL_SWITCH = "kill_switch"  # kill -9, down a moment, restart on the same store and port
    FILL_DISK = "fill_disk"  # the switch's SQLite filesystem full (a filler file takes the rest)
    FREE_DISK = "free_disk"  # the filler removed: the store must recover by itself
    KILL_CASSANDRA = "kill_cassandra"  # kill -9 one node of the three-node cluster (``node``)
    START_CASSANDRA = "start_cassandra"  # start it again, wait until the cluster sees it Up
    SLOW_STORE = "slow_store"  # every store call of every switch waits ``delay_ms`` first
    FAST_STORE = "fast_store"  # ... until this
    RESTART_NODE = "restart_node"  # SIGTERM a network node, down a moment, start it again


@dataclass(frozen=True, slots=True)
class Event:
    """Fired once ``at`` payments have been started."""

    at: int
    action: Action
    node: str = ""
    faults: control_pb2.FaultSpec | None = field(default=None, compare=False)
    down_s: float = 0.0
    delay_ms: float = 0.0  # SLOW_STORE

    def describe(self) -> str:
        if self.action is Action.SET_FAULTS and self.faults is not None:
            f = self.faults
            parts = []
            if f.latency.distribution:
                parts.append(f"latency {f.latency.ms:.0f}ms@{f.latency.rate:.2f}")
            if f.fail.rate:
                what = (
                    f"iso {f.fail.response_code - 100:02d}"
                    if f.fail.WhichOneof("answer") == "response_code"
                    else "UNAVAILABLE"
                )
                parts.append(f"fail {what}@{f.fail.rate:.2f}")
            if f.drop.rate:
                mode = "hold" if f.drop.mode == control_pb2.DROP_MODE_HOLD else "abort"
                parts.append(f"drop {mode}@{f.drop.rate:.2f}")
            ops = ",".join(f.operations) or "all"
            return f"@{self.at} {self.node}: {'; '.join(parts)} ({ops})"
        extra = f" down {self.down_s:.1f}s" if self.down_s else ""
        extra += f" {self.delay_ms:.0f}ms per call" if self.delay_ms else ""
        return f"@{self.at} {self.action.value} {self.node}{extra}".rstrip()


SWITCH = "switch-1"


def switch_ids(count: int) -> tuple[str, ...]:
    """The stack's switch process ids: ``switch-1``, then ``switch-1-2``..."""
    return tuple(SWITCH if i == 1 else f"{SWITCH}-{i}" for i in range(1, count + 1))


@dataclass(frozen=True, slots=True)
class Plan:
    seed: int
    payments: tuple[Payment, ...]
    events: tuple[Event, ...]
    concurrency: int
    switches: tuple[str, ...] = (SWITCH,)  # processes on one (Cassandra) store
    skew_s: float = 0.0  # the wall clock of every switch but the first is off by this much

    def switch_of(self, terminal_id: str) -> str:
        """The switch process a terminal talks to (terminals spread over the processes)."""
        ids = sorted({p.terminal_id for p in self.payments} | {t for t, _ in TERMINALS})
        return self.switches[ids.index(terminal_id) % len(self.switches)]


def _payment(rng: random.Random, index: int) -> Payment:
    terminal_id, merchant_id = rng.choice(TERMINALS)
    card = rng.choices(CARDS, weights=[c.weight for c in CARDS])[0]
    amount = rng.randint(100, card.max_minor)
    lifecycle = rng.choices(list(Lifecycle), weights=[30, 15, 10, 15, 15, 15])[0]
    if lifecycle is Lifecycle.TIP and merchant_id not in TIP_MERCHANTS:
        lifecycle = Lifecycle.CAPTURE
    capture = amount
    if lifecycle is Lifecycle.PARTIAL:
        capture = rng.randint(1, max(amount - 1, 1))
    elif lifecycle is Lifecycle.TIP:
        capture = amount + rng.randint(1, max(amount * TIP_PCT // 100, 1))
    refund = rng.choice([capture, rng.randint(1, capture)]) if lifecycle is Lifecycle.REFUND else 0
    resends = rng.choices([0, 1, 2], weights=[60, 30, 10])[0]
    return Payment(
        index, terminal_id, merchant_id, card, amount, lifecycle, capture, refund, resends,
        concurrent=resends > 0 and rng.random() < 0.5,
    )  # fmt: skip


def _fault_spec(rng: random.Random, seed: int) -> control_pb2.FaultSpec:
    spec = control_pb2.FaultSpec(seed=seed)
    kinds = rng.sample(["latency", "fail", "drop"], k=rng.choice([1, 1, 2]))
    if "latency" in kinds:
        spec.latency.distribution = control_pb2.LATENCY_DISTRIBUTION_FIXED
        spec.latency.ms = rng.choice([150.0, 600.0, 1500.0, 2500.0])
        spec.latency.rate = rng.choice([0.3, 0.6, 1.0])
    if "fail" in kinds:
        spec.fail.rate = rng.choice([0.2, 0.4, 0.7])
        if rng.random() < 0.5:
            spec.fail.response_code = common_pb2.RESPONSE_CODE_SYSTEM_MALFUNCTION
        else:
            spec.fail.grpc_status = 14  # UNAVAILABLE
    if "drop" in kinds:
        spec.drop.rate = rng.choice([0.2, 0.4, 0.7])
        spec.drop.mode = rng.choice([control_pb2.DROP_MODE_ABORT, control_pb2.DROP_MODE_HOLD])
    ops = rng.choice([[], [], ["authorize"], ["reverse", "capture"]])
    spec.operations.extend(ops)
    return spec


def _events(rng: random.Random, seed: int, payments: int, switches: tuple[str, ...]) -> list[Event]:
    events: list[Event] = []
    span = max(payments - 2, 1)

    def a_switch() -> str:  # no draw with one switch: single-switch plans stay as they were
        return switches[0] if len(switches) == 1 else rng.choice(switches)

    # Every seed kills a switch at least once, somewhere in the first two thirds.
    events.append(Event(rng.randint(1, max(span * 2 // 3, 1)), Action.KILL_SWITCH,
                        a_switch(), down_s=rng.choice([0.0, 0.5, 1.5])))  # fmt: skip
    # Every seed takes acq-beta down for a while: M-FUEL's sales meanwhile go to stand-in
    # (approved by the switch, advised to the issuer once the acquirer is back).
    events.append(Event(rng.randint(0, span), Action.RESTART_NODE, "acq-beta",
                        down_s=rng.choice([3.0, 5.0, 8.0])))  # fmt: skip
    for _ in range(max(2, payments // 10)):
        at = rng.randint(0, span)
        kind = rng.choices(["faults", "kill", "restart"], weights=[65, 20, 15])[0]
        if kind == "kill":
            events.append(Event(at, Action.KILL_SWITCH, a_switch(), down_s=rng.choice([0.0, 1.0])))
        elif kind == "restart":
            node = rng.choice((*ACQUIRERS, *SCHEMES, *ISSUERS))
            events.append(Event(at, Action.RESTART_NODE, node, down_s=rng.choice([0.0, 1.0])))
        else:
            node = rng.choice((*ACQUIRERS, *ACQUIRERS, *SCHEMES, *ISSUERS, *ISSUERS))
            spec = _fault_spec(rng, seed * 1000 + len(events))
            events.append(Event(at, Action.SET_FAULTS, node, faults=spec))
            until = min(at + rng.randint(3, 12), payments)
            events.append(Event(until, Action.CLEAR_FAULTS, node))
    events.sort(key=lambda e: (e.at, e.action is not Action.CLEAR_FAULTS))
    return events


def _cluster_events(rng: random.Random, payments: int) -> list[Event]:
    """One node of three down for a while (QUORUM holds), then two down at once for a few
    payments (quorum lost: the switch must refuse, never approve blind, and recover)."""
    half = max(payments // 2, 2)
    one = rng.choice(["cass-1", "cass-2", "cass-3"])
    at = rng.randint(0, max(half - 6, 0))
    events = [
        Event(at, Action.KILL_CASSANDRA, one),
        Event(at + rng.randint(2, 5), Action.START_CASSANDRA, one),
    ]
    two = rng.sample(["cass-1", "cass-2", "cass-3"], k=2)
    at = rng.randint(half, max(payments - 4, half))
    events += [Event(at, Action.KILL_CASSANDRA, n) for n in two]
    end = min(at + rng.randint(1, 3), payments)
    events += [Event(end, Action.START_CASSANDRA, n) for n in two]
    return events


def make_plan(
    seed: int,
    payments: int,
    concurrency: int = 4,
    switches: int = 1,
    disk: bool = False,
    cluster: bool = False,
) -> Plan:
    """The whole scenario of ``seed``: same seed and size (and switch count), same plan. With
    several switch processes, kills fall on any of them and the others' clocks are skewed;
    with ``disk`` (SQLite on its own small filesystem), that filesystem fills up for a while;
    with ``cluster``, Cassandra nodes die (one, then two at once: quorum lost) and come back."""
    rng = random.Random(f"payswitch-faults/{seed}")
    pays = tuple(_payment(rng, i) for i in range(payments))
    ids = switch_ids(switches)
    events = _events(rng, seed, payments, ids)
    if disk:
        at = rng.randint(0, max(payments - 10, 0))
        events.append(Event(at, Action.FILL_DISK, SWITCH))
        events.append(Event(min(at + rng.randint(5, 10), payments), Action.FREE_DISK, SWITCH))
        events.sort(key=lambda e: (e.at, e.action is not Action.CLEAR_FAULTS))
    events = tuple(events)
    skew = rng.choice([-2.0, -0.7, 0.7, 2.0]) if switches > 1 else 0.0
    # Every seed has a slow store for a while: a saturated disk, a busy cluster.
    at = rng.randint(0, max(payments - 8, 0))
    slow = [
        Event(at, Action.SLOW_STORE, SWITCH, delay_ms=rng.choice([20.0, 80.0, 250.0, 600.0])),
        Event(min(at + rng.randint(3, 8), payments), Action.FAST_STORE, SWITCH),
    ]
    if cluster:  # three Cassandra nodes, replication 3, QUORUM
        slow += _cluster_events(rng, payments)
    events = tuple(sorted((*events, *slow), key=lambda e: e.at))  # stable: same-index order kept
    return Plan(seed, pays, events, concurrency, ids, skew)
