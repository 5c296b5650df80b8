"""Drives one plan against a running stack: terminals paying, capturing and voiding through
the SDK (idempotent retries of the very same request, including across a switch kill) while a
chaos task fires the plan's fault events. Then a catch-up pass (faults cleared, the terminals
resolve what they could not: the same payment request again, captures and voids under new
keys, as a real terminal does at the end of its shift).

What the terminals saw is recorded per payment (``Seen``) for ``invariants``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from payswitch import money
from payswitch.v1 import admin_pb2, admin_pb2_grpc, control_pb2, control_pb2_grpc
from stack.launcher import Stack, StackError
from terminals.errors import (
    InvalidRequest,
    NotFound,
    Overloaded,
    Refused,
    SwitchUnavailable,
    TerminalError,
)
from terminals.results import Result
from terminals.retry import RetryPolicy
from terminals.sdk import Prepared, Terminal
from terminals.secure_element import SecureElement
from terminals.stan import StanCounter

from .disk import SmallDisk
from .plan import SWITCH, Action, Event, Lifecycle, Payment, Plan

# The SDK's own retries per send: a few attempts within a few seconds.
SDK_RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0.1, max_backoff_s=0.5, total_timeout_s=5)
# How long a retry after quiescence may take: past the switch's bound for settling a key its
# dead process left IN_FLIGHT (the harness sets [switch] abandoned_key_s to 10 s).
RECHECK_S = 25.0
# A node restarted by the plan must be reachable again at once, not after gRPC's 1 s+ backoff.
_CONTROL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 200),
]


# Events that act on the node itself: one due while the node is down for a planned outage ends
# that outage (the disk and store events name the switch but act on its filesystem or store).
_NEEDS_NODE_UP = frozenset(
    {Action.SET_FAULTS, Action.CLEAR_FAULTS, Action.KILL_SWITCH, Action.RESTART_NODE}
)


def unrecorded_96(first: tuple[str, str], later: set[tuple[str, str]]) -> bool:
    """A 96 the switch could not keep under its key (the store refused the write: a full
    disk), for a transaction it then settled as not approved: a later retry is answered from
    the transaction (91, reversed), not with the 96. Both are refusals of the same transaction
    and nothing was charged; the invariants still check its money. Any other difference (an
    approval on one side, another transaction) is a violation."""
    code, tx_id = first
    return code == "96" and tx_id != "" and all(c != "00" and t == tx_id for c, t in later)


@dataclass
class FollowUp:
    """The capture or void of one approval, as the terminal saw it."""

    kind: str  # capture | void
    attempts: int = 0
    acked: bool = False  # the switch answered 00 (void: accepted, maybe queued)
    codes: list[str] = field(default_factory=list)  # every answer code, or error kind
    precondition: str = ""  # FAILED_PRECONDITION text, when the state had moved already


def refund_key(seen: Seen) -> str:
    """The idempotency key of a payment's refund (one request until answered)."""
    return seen.key + "-r"


@dataclass
class Refunded:
    """The refund of one captured sale, sent once the network is calm (same request until
    answered)."""

    amount_minor: int
    code: str = ""  # the answer's ISO code, "" when none came
    transaction_id: str = ""  # the refund's own transaction
    error: str = ""


@dataclass
class Seen:
    """What the terminal saw for one payment."""

    payment: Payment
    key: str
    answers: list[tuple[str, str]] = field(default_factory=list)  # (iso code, transaction id)
    errors: list[str] = field(default_factory=list)  # unexpected (non-retryable) errors
    gave_up: int = 0  # sends that ended without an answer (retries exhausted)
    follow_up: FollowUp | None = None
    refund: Refunded | None = None

    @property
    def answer(self) -> tuple[str, str] | None:
        return self.answers[0] if self.answers else None

    @property
    def approved(self) -> bool:
        return self.answer is not None and self.answer[0] == "00"


class Terminals:
    """One SDK terminal per terminal id, each with its own secure element and jitter RNG."""

    def __init__(self, stack: Stack, plan: Plan, se_of: dict[str, SecureElement]) -> None:
        self.by_id = {
            tid: Terminal(
                stack.address(plan.switch_of(tid)),
                tid,
                mid,
                deadline_s=2.0,
                retry=SDK_RETRY,
                stans=StanCounter(),
                rng=random.Random(f"{plan.seed}/{tid}/jitter"),
                secure_element=se_of[tid],
                credentials=stack.terminal_credentials(tid),  # mTLS when the topology has it
            )
            for tid, mid in {(p.terminal_id, p.merchant_id) for p in plan.payments}
        }

    async def close(self) -> None:
        for t in self.by_id.values():
            await t.close()


def _cluster():
    """tests/support/cassandra_node.py: the three-node cluster's process control."""
    import sys

    support = str(Path(__file__).resolve().parents[1] / "support")
    if support not in sys.path:
        sys.path.insert(0, support)
    import cassandra_node

    return cassandra_node


def _cass_index(node: str) -> int:
    return int(node.removeprefix("cass-"))


class Driver:
    def __init__(
        self,
        stack: Stack,
        plan: Plan,
        terminals: Terminals,
        log,
        disk: SmallDisk | None = None,
        slow_flag: Path | None = None,
    ) -> None:
        self.stack = stack
        self.disk = disk
        self._not_started: set[str] = set()  # switches that could not start on the full disk
        self._cass_down: set[str] = set()  # cluster nodes the plan killed, not yet restarted
        self.slow_flag = slow_flag  # the switches' store waits while this file names a delay
        self.plan = plan
        self.terminals = terminals
        self.log = log
        self.seen = [Seen(p, f"f{plan.seed}-{p.index}") for p in plan.payments]
        self._prepared: dict[int, Prepared] = {}
        self._follow_ups: list[tuple[Seen, Prepared]] = []
        self.notes: list[str] = []  # leftovers that are explained, not violations
        self._rng = random.Random(f"payswitch-faults/{plan.seed}/driver")
        self._started = 0
        self._fired = 0
        self._progress = asyncio.Condition()
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._admin: grpc.aio.Channel | None = None
        self._t0 = time.monotonic()
        self._payments_done = asyncio.Event()
        self._outage_over: dict[str, asyncio.Event] = {}  # per node: end its outage now

    # -- sending -------------------------------------------------------------------------

    async def _send(self, terminal: Terminal, prepared: Prepared, rounds: int) -> Result | None:
        """Send the same request until answered; None after ``rounds`` exhausted SDK retries."""
        for attempt in range(rounds):
            try:
                return await terminal.send(prepared)
            except (SwitchUnavailable, Overloaded):  # shed or rate-limited: try again later
                await asyncio.sleep(0.2 + 0.3 * attempt)
        return None

    async def pay(self, seen: Seen, rounds: int) -> None:
        p = seen.payment
        terminal = self.terminals.by_id[p.terminal_id]
        prepared = self._prepared.get(p.index)
        if prepared is None:
            prepared = terminal.prepare_pay(
                p.amount_minor, p.card.currency, p.card.pan, p.card.expiry, idempotency_key=seen.key
            )
            self._prepared[p.index] = prepared
        sends = 1 if seen.answers else 1 + p.resends
        if p.concurrent and not seen.answers:
            results = await asyncio.gather(
                *(self._recorded(seen, terminal, prepared, rounds) for _ in range(2))
            )
            sends -= 2
            if not any(results):
                return
        for _ in range(max(sends, 0)):
            if not await self._recorded(seen, terminal, prepared, rounds) and not seen.answers:
                return

    async def _recorded(
        self, seen: Seen, terminal: Terminal, prepared: Prepared, rounds: int
    ) -> bool:
        try:
            result = await self._send(terminal, prepared, rounds)
        except TerminalError as exc:
            seen.errors.append(f"pay: {exc.code_name}: {exc.message}")
            return False
        if result is None:
            seen.gave_up += 1
            return False
        seen.answers.append((result.iso_code, result.transaction_id))
        return True

    async def follow_up(self, seen: Seen, rounds: int) -> None:
        """Capture or void an approval per its lifecycle; a new key per attempt (an answer
        of 91 or 96 is final for its key)."""
        p = seen.payment
        if not seen.approved or p.lifecycle is Lifecycle.KEEP:
            return
        kind = "void" if p.lifecycle is Lifecycle.VOID else "capture"  # TIP, REFUND: capture
        fu = seen.follow_up = seen.follow_up or FollowUp(kind)
        if fu.acked or fu.precondition:
            return
        terminal = self.terminals.by_id[p.terminal_id]
        tx_id = seen.answer[1]
        for _ in range(rounds):
            fu.attempts += 1
            key = f"{seen.key}-{kind[0]}{fu.attempts}"
            if kind == "capture":
                amount = money.Amount(p.capture_minor, p.card.currency)
                prepared = terminal.prepare_capture(tx_id, amount, idempotency_key=key)
            else:
                prepared = terminal.prepare_void(tx_id, idempotency_key=key)
            self._follow_ups.append((seen, prepared))
            try:
                result = await self._send(terminal, prepared, 2)
            except Refused as exc:
                # The state moved under us: an earlier attempt went through after all.
                fu.precondition = exc.message
                return
            except TerminalError as exc:
                fu.codes.append(exc.code_name)
                seen.errors.append(f"{kind}: {exc.code_name}: {exc.message}")
                return
            if result is None:
                fu.codes.append("NO_ANSWER")
            else:
                fu.codes.append(result.iso_code)
                if result.approved:
                    fu.acked = True
                    return
            await asyncio.sleep(0.2)

    async def _one(self, seen: Seen) -> None:
        await self.pay(seen, rounds=3)
        await self.follow_up(seen, rounds=3)

    # -- the run ---------------------------------------------------------------------------

    async def run(self) -> None:
        queue: asyncio.Queue[Seen] = asyncio.Queue()
        for s in self.seen:
            queue.put_nowait(s)

        async def worker() -> None:
            while not queue.empty():
                seen = queue.get_nowait()
                async with self._progress:
                    # Every event due before this payment has gone off (a kill: the switch
                    # is down, its restart under way), so faults meet the payments planned.
                    await self._progress.wait_for(lambda i=seen.payment.index: self._due(i))
                    self._started += 1
                    self._progress.notify_all()
                await self._one(seen)

        chaos = asyncio.create_task(self._chaos())
        try:
            await asyncio.gather(*(worker() for _ in range(self.plan.concurrency)))
            # Every event is due by the last payment: the chaos ends once the last restart
            # is done (never cancelled mid-start, which would race ``calm``'s own starts);
            # an outage still under way ends now, as faults do at ``calm``.
            self._payments_done.set()
            await chaos
        finally:
            chaos.cancel()
            await asyncio.gather(chaos, return_exceptions=True)

    def _due(self, index: int) -> bool:
        """Have all events planned at or before payment ``index`` gone off?"""
        return all(e.at > index for e in self.plan.events[self._fired :])

    async def _chaos(self) -> None:
        """Fire the plan's events in order. A kill's or a stop's restart (its outage, then the
        start) runs in the background: the next event on the *same* node waits for it (a node
        is never started twice, nor killed mid-start), events on other nodes and the payments
        go on meanwhile, as they would while one node of a real network is down."""
        restarts: dict[str, asyncio.Task[None]] = {}
        try:
            for event in self.plan.events:
                async with self._progress:
                    await self._progress.wait_for(lambda e=event: self._started >= e.at)
                pending = restarts.pop(event.node, None)
                if pending is not None:
                    if event.action in _NEEDS_NODE_UP:  # its outage has covered its payments
                        self._cut_short(event.node)
                    await pending
                self.log(f"  +{time.monotonic() - self._t0:.1f}s event {event.describe()}")
                try:
                    restart = await self.fire(event)
                except (grpc.aio.AioRpcError, OSError, RuntimeError) as exc:
                    restart = None
                    self.log(f"  event failed: {type(exc).__name__}: {exc}")
                if restart is not None:
                    restarts[event.node] = asyncio.ensure_future(self._logged(event, restart))
                async with self._progress:
                    self._fired += 1
                    self._progress.notify_all()
            for node, task in list(restarts.items()):
                await task
                del restarts[node]
        finally:
            for task in restarts.values():
                task.cancel()
            await asyncio.gather(*restarts.values(), return_exceptions=True)

    async def _logged(self, event: Event, restart: Awaitable[None]) -> None:
        """A background restart; its failure is logged (``calm`` starts the node again)."""
        try:
            await restart
        except (grpc.aio.AioRpcError, OSError, RuntimeError) as exc:
            self.log(f"  restart after {event.describe()} failed: {type(exc).__name__}: {exc}")

    def _control(self, node: str) -> control_pb2_grpc.NodeControlServiceStub:
        if node not in self._channels:  # fault control is the network operator's
            creds = self.stack.operator_credentials()
            address = self.stack.address(node)
            self._channels[node] = (
                grpc.aio.secure_channel(address, creds, options=_CONTROL_OPTIONS)
                if creds is not None
                else grpc.aio.insecure_channel(address, options=_CONTROL_OPTIONS)
            )
        return control_pb2_grpc.NodeControlServiceStub(self._channels[node])

    async def fire(self, event: Event) -> Awaitable[None] | None:
        """Set the event off; a kill returns the restart still to wait for."""
        if event.action is Action.SET_FAULTS:
            request = control_pb2.SetFaultsRequest(faults=event.faults)
            await self._control(event.node).SetFaults(request, timeout=5, wait_for_ready=True)
        elif event.action is Action.CLEAR_FAULTS:
            await self._control(event.node).ClearFaults(
                control_pb2.ClearFaultsRequest(), timeout=5, wait_for_ready=True
            )
        elif event.action is Action.KILL_SWITCH:
            # Its successor first, held after its imports beside it (Stack.prestart): the
            # kill hits the serving process; the restart is then the switch's own start.
            await asyncio.to_thread(self.stack.prestart, event.node)
            await asyncio.to_thread(self.stack.kill, event.node)
            return self._restart(event.node, event.down_s)
        elif event.action is Action.FILL_DISK and self.disk is not None:
            taken = await asyncio.to_thread(self.disk.fill)
            self.log(f"  the switch's disk is full ({taken} bytes taken)")
        elif event.action is Action.FREE_DISK and self.disk is not None:
            await asyncio.to_thread(self.disk.free)
            for node in sorted(self._not_started):  # as a supervisor would, space being back
                await asyncio.to_thread(self.stack.start_node, node)
            self._not_started.clear()
        elif event.action is Action.KILL_CASSANDRA:
            await asyncio.to_thread(_cluster().kill_node, _cass_index(event.node), True)
            self._cass_down.add(event.node)
        elif event.action is Action.START_CASSANDRA:
            await asyncio.to_thread(_cluster().start_node, _cass_index(event.node))
            self._cass_down.discard(event.node)
        elif event.action is Action.SLOW_STORE and self.slow_flag is not None:
            self.slow_flag.write_text(f"{event.delay_ms}\n")
        elif event.action is Action.FAST_STORE and self.slow_flag is not None:
            self.slow_flag.unlink(missing_ok=True)
        elif event.action is Action.RESTART_NODE:
            await asyncio.to_thread(self.stack.stop_node, event.node)
            return self._restart(event.node, event.down_s)
        return None

    def _cut_short(self, node: str) -> None:
        """End ``node``'s planned outage now (the next event on it is due)."""
        self._outage_over.setdefault(node, asyncio.Event()).set()

    async def _restart(self, node: str, down_s: float) -> None:
        """The planned outage, then the start. The outage ends early when every payment is
        done (the network calms down) or when the plan's next event acting on the same node
        comes due (``_NEEDS_NODE_UP``): that event needs the node up, and every payment
        planned before it (the ones the outage is for) has been started; waiting out the rest
        of ``down_s`` would only hold up the payments after it. The new process is started
        when the outage begins, held after its imports (``Stack.prestart``), so the start
        after it is the node's own (HSM, store, port), not the interpreter's."""
        over = self._outage_over.setdefault(node, asyncio.Event())  # maybe set already
        if not over.is_set() and not self._payments_done.is_set():
            await asyncio.to_thread(self.stack.prestart, node)  # a killed switch's: its standby
        waits = [asyncio.ensure_future(e.wait()) for e in (self._payments_done, over)]
        try:
            await asyncio.wait(waits, timeout=down_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            del self._outage_over[node]  # the next outage of this node waits afresh
        try:
            await asyncio.to_thread(self.stack.start_node, node)
        except StackError as exc:
            if self.disk is None or not self.disk.filler.exists():
                raise
            # A switch started on a full disk exits: its recovery scan cannot take its lease
            # (fail closed: it never serves on a store it cannot write). It is started again
            # once the disk is freed, as a supervisor restarting it would succeed then.
            self._not_started.add(node)
            self.notes.append(f"{node} could not start on the full disk (it exited: "
                              f"{str(exc).splitlines()[0]}); started again once freed")  # fmt: skip

    async def calm(self) -> None:
        """Faults off everywhere, every process up: the start of quiescence."""
        if self.disk is not None:
            await asyncio.to_thread(self.disk.free)
        if self.slow_flag is not None:
            self.slow_flag.unlink(missing_ok=True)
        for cass in sorted(self._cass_down):
            await asyncio.to_thread(_cluster().start_node, _cass_index(cass))
        self._cass_down.clear()
        for node in self.stack.node_ids:
            if not self.stack.running(node):
                await asyncio.to_thread(self.stack.start_node, node)
        for node in self.stack.node_ids:
            if node != SWITCH and not node.startswith(SWITCH + "-"):
                await self._control(node).ClearFaults(
                    control_pb2.ClearFaultsRequest(), timeout=5, wait_for_ready=True
                )

    async def catch_up(self, deadline_s: float) -> None:
        """Resolve at the terminals what the faults left open, bounded in time."""
        end, first = time.monotonic() + deadline_s, True
        while time.monotonic() < end:
            open_pays = [s for s in self.seen if not s.answers and not s.errors]
            open_fus = [
                s
                for s in self.seen
                if s.approved
                and s.payment.lifecycle is not Lifecycle.KEEP
                and not (s.follow_up and (s.follow_up.acked or s.follow_up.precondition))
                and not any(e.startswith(("capture", "void")) for e in s.errors)
            ]
            if not open_pays and not open_fus:
                return
            if not first:  # a terminal's pause between rounds, none once all is resolved
                await asyncio.sleep(0.5)
            first = False
            for s in open_pays:
                await self.pay(s, rounds=2)
            for s in open_fus:
                await self.follow_up(s, rounds=2)

    async def recheck_keys(self) -> list[str]:
        """After quiescence every key the terminals used must answer a retry: a payment with
        its first answer, a capture or void with its answer (or, for one that never ran, a
        refusal now that the state moved on), never ABORTED for a key left IN_FLIGHT (the
        switch settles keys its dead process left: switch/abandoned_keys.py)."""
        bad = []
        for seen in self.seen:
            prepared = self._prepared.get(seen.payment.index)
            if prepared is None:
                continue
            terminal = self.terminals.by_id[seen.payment.terminal_id]
            try:
                result = await self._recheck(terminal, prepared)
            except TerminalError as exc:
                bad.append(f"payment {seen.payment.index} key {seen.key}: a retry after "
                           f"quiescence gets {exc.code_name}: {exc.message}")  # fmt: skip
                continue
            got = (result.iso_code, result.transaction_id)
            if seen.answers and got != seen.answers[0]:
                if unrecorded_96(seen.answers[0], {got}):
                    self.notes.append(f"payment {seen.payment.index} key {seen.key}: first "
                                      f"{seen.answers[0]} (not kept: the store refused), "
                                      f"a retry gets {got}")  # fmt: skip
                    continue
                bad.append(f"payment {seen.payment.index} key {seen.key}: a retry after "
                           f"quiescence gets {got}, first {seen.answers[0]}")  # fmt: skip
        for seen, prepared in self._follow_ups:
            terminal = self.terminals.by_id[seen.payment.terminal_id]
            try:
                await self._recheck(terminal, prepared)
            except (Refused, NotFound):
                pass  # an attempt that never ran is refused now that the state moved on
            except InvalidRequest as exc:
                # An attempt refused before any effect gave its key back, but its KSN was used:
                # the same bytes again are a replay of a spent KSN (a new request needs a new
                # one). A key with an answer would have replayed it before the KSN was looked at.
                if exc.field != "ksn" or "already used" not in exc.message:
                    bad.append(f"payment {seen.payment.index} {prepared.operation} key "
                               f"{prepared.idempotency_key}: a retry after quiescence gets "
                               f"{exc.code_name}: {exc.message}")  # fmt: skip
            except TerminalError as exc:
                bad.append(f"payment {seen.payment.index} {prepared.operation} key "
                           f"{prepared.idempotency_key}: a retry after quiescence gets "
                           f"{exc.code_name}: {exc.message}")  # fmt: skip
        return bad

    async def _recheck(self, terminal: Terminal, prepared: Prepared) -> Result:
        """Send as a terminal keeps doing until answered, bounded: past the switch's bound for
        abandoned keys, so a key whose process died is answered by then."""
        end = time.monotonic() + RECHECK_S
        while True:
            try:
                return await terminal.send(prepared)
            except (SwitchUnavailable, Overloaded):
                if time.monotonic() > end:
                    raise
                await asyncio.sleep(0.5)

    async def refunds(self, views: dict) -> None:
        """Refund what the plan refunds, on the calm network between two cut-offs: each the
        same request (one key) until answered, bounded; only a sale settled as planned."""
        for seen in self.seen:
            p, view = seen.payment, views.get(seen.payment.index)
            if p.lifecycle is not Lifecycle.REFUND or view is None or view.state != "SETTLED":
                continue
            terminal = self.terminals.by_id[p.terminal_id]
            key = refund_key(seen)
            prepared = terminal.prepare_refund(
                view.transaction_id, p.refund_minor, p.card.currency, idempotency_key=key
            )
            seen.refund = Refunded(p.refund_minor)
            try:
                result = await self._recheck(terminal, prepared)
            except TerminalError as exc:
                seen.refund.error = f"{exc.code_name}: {exc.message}"
                continue
            seen.refund.code, seen.refund.transaction_id = result.iso_code, result.transaction_id

    async def replay_dead_letters(self) -> list[str]:
        """An operator's replay of every dead letter (``AdminService.ReplayDeadLetter``) once
        the network is calm; one note per item replayed."""
        stub = admin_pb2_grpc.AdminServiceStub(self._admin_channel())
        notes = []
        for item in await self.saf_items(True):
            request = admin_pb2.ReplayDeadLetterRequest(item_id=item.id)
            await stub.ReplayDeadLetter(request, timeout=5, wait_for_ready=True)
            notes.append(f"replayed dead letter {item.kind} for tx {item.transaction_id} "
                         f"after {item.attempts} attempts ({item.last_error!r})")  # fmt: skip
        return notes

    def _admin_channel(self) -> grpc.aio.Channel:
        if self._admin is None:
            creds = self.stack.admin_credentials()
            address = self.stack.admin_address()
            self._admin = (
                grpc.aio.secure_channel(address, creds, options=_CONTROL_OPTIONS)
                if creds is not None
                else grpc.aio.insecure_channel(address, options=_CONTROL_OPTIONS)
            )
        return self._admin

    async def saf_items(self, dead_letters: bool) -> list:
        """The switch's store-and-forward items (live, or dead letters) over its admin API."""
        stub = admin_pb2_grpc.AdminServiceStub(self._admin_channel())
        request = admin_pb2.ListSafItemsRequest(dead_letters=dead_letters, limit=1000)
        reply = await stub.ListSafItems(request, timeout=5, wait_for_ready=True)
        return list(reply.items)

    async def status(self, seen: Seen, key: str = ""):
        """The switch's view of a payment (by its idempotency key, or ``key``), or None if it
        has none."""
        terminal = self.terminals.by_id[seen.payment.terminal_id]
        key = key or seen.key
        for _ in range(5):
            try:
                return await terminal.status(idempotency_key=key)
            except NotFound:
                return None
            except SwitchUnavailable:
                await asyncio.sleep(0.5)
        return await terminal.status(idempotency_key=key)

    async def refund_status(self, seen: Seen):
        """The switch's view of a payment's refund (by the refund's key), or None."""
        return await self.status(seen, refund_key(seen))

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        if self._admin is not None:
            await self._admin.close()
