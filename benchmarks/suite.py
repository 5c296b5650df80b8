"""The whole benchmark run, in order, on one event loop and one clock.

1. throwaway HSM token, bench topology on free ports, keys, stack started;
2. warm-up (recorded but excluded from every figure);
3. closed loop at each concurrency level (approvals across schemes);
4. open loop sweep from low to past saturation (rates derived from the closed-loop peak unless
   given), stopping after two saturated rates, then bisecting towards the highest rate that met
   the bar (and trying lower rates when even the lowest missed it);
5. the realistic mix in open loop at half the highest passing rate;
6. ghz against the same switch;
7. switch-added latency from the logs; stack stopped;
8. the ceilings with the same generator: bare echo (1 hop) and bare chain (4 hops);
9. dependency rates (HSM pool, SQLite store) in a child process.

Each phase records CPU seconds of every process involved, the generator included.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import (
    ceiling,
    cpu,
    deps,
    ghz,
    hoptimes,
    loadgen,
    overload,
    soak,
    stages,
    stores,
    world,
)
from benchmarks.phases import Phase, meets_target, saturated
from benchmarks.procstat import CpuWindow, load_average
from benchmarks.traffic import (
    APPROVALS,
    MIX_WEIGHTS,
    CardFeed,
    CardProfile,
    CeilingFeed,
    Fleet,
    MixFeed,
)

FULL_FRACTIONS = (0.1, 0.25, 0.5, 0.7, 0.85, 1.0, 1.15, 1.3)
QUICK_FRACTIONS = (0.3, 0.9)
# Issue 14's comparison: rounds of the peak's level, alternately with and without the stage.
RISK_ROUNDS = 3


@dataclass
class Settings:
    """Everything the command line decides (see ``benchmarks.cli``)."""

    out_dir: Path
    quick: bool = False
    duration_s: float = 10.0
    warmup_s: float = 5.0
    concurrency: list[int] = field(default_factory=lambda: [1, 4, 16, 64])
    rates: list[float] | None = None
    refine: int = 2
    mix_s: float = 15.0
    deadline_s: float = 2.0
    p99_target_ms: float = 100.0
    terminals: int = 200
    channels: int = 4
    max_requests: int = 200_000
    max_in_flight: int = 4096
    synchronous: str = "full"
    risk: bool = True  # the risk stage on (observe-only rules: benchmarks/world.py)
    latency: bool = True
    ghz_path: str | None = None
    ghz: bool = True
    ghz_concurrency: int = 16
    ceiling: bool = True
    ceiling_duration_s: float = 8.0
    deps: bool = True
    deps_seconds: float = 2.0
    keep_run_dir: bool = False
    overload: bool = True  # the overload-and-recovery phase (benchmarks/overload.py)
    closed_only: bool = False  # the closed loop and its CPU per authorization, nothing else
    profile: bool = False  # py-spy flame graph of the switch at the closed-loop peak
    risk_compare: bool = True  # the peak's level again on a stack without the risk stage
    store: str = "sqlite"  # sqlite | cassandra | cassandra-cluster (benchmarks.stores)
    switches: int = 1  # switch processes (more than one: Cassandra only)
    soak_s: float = 0.0  # > 0: the soak at half the peak instead of the sweep and mix
    soak_window_s: float = 60.0


@dataclass
class Outcome:
    """What the run produced, before it is turned into the report."""

    settings: Settings
    started_at: str
    load_average_start: list[float]
    phases: list[Phase] = field(default_factory=list)
    warmup: Phase | None = None
    best_rate: float | None = None
    switch_added: dict[str, Any] = field(default_factory=dict)
    forwarder_added: dict[str, Any] = field(default_factory=dict)
    mix_checks: dict[str, int] = field(default_factory=dict)
    ghz: dict[str, Any] = field(default_factory=dict)
    deps: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stack_info: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    risk_compare: dict[str, Any] = field(default_factory=dict)
    soak: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    overload: dict[str, Any] = field(default_factory=dict)  # benchmarks/overload.py


class Runner:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.origin = time.perf_counter()
        self.out = Outcome(settings, time.strftime("%Y-%m-%dT%H:%M:%S%z"), load_average())
        self.fleet: Fleet | None = None
        self.rate_guess = 200.0  # requests/s, for how many requests to prebuild per phase
        self.topology: Any = None  # the running stack's, for the card simulator
        self.metrics_addresses: list[str] = []  # each switch's /metrics: stage times, statements

    def _prebuild(self, feed: loadgen.Feed, mode: str, level: float, duration_s: float) -> None:
        """Build the phase's requests before its clock starts (see ``traffic``)."""
        if mode in ("open", "soak"):
            n = int(level * duration_s) + 8
        else:
            n = int(self.rate_guess * duration_s * 2) + 4 * int(level)
        feed.prepare(min(n, self.s.max_requests))

    async def _phase(
        self,
        target: loadgen.Target,
        feed: loadgen.Feed,
        pids: dict[str, int],
        *,
        name: str,
        system: str,
        mode: str,
        level: float,
        duration_s: float,
        workload: str = "approvals",
    ) -> Phase:
        s = self.s
        phase = Phase(name, system, mode, level, workload, self.origin, window_s=duration_s)
        self._prebuild(feed, mode, level, duration_s)
        live_before = feed.built_live
        window = CpuWindow(pids)
        window.start()
        before = await self._stage_scrape(system)
        phase.started = time.perf_counter()
        if mode in ("open", "soak"):
            phase.rec = await loadgen.open_loop(
                target,
                feed,
                level,
                duration_s,
                deadline_s=s.deadline_s,
                max_requests=s.max_requests,
                max_in_flight=s.max_in_flight,
            )
        else:
            phase.rec = await loadgen.closed_loop(
                target,
                feed,
                int(level),
                duration_s,
                deadline_s=s.deadline_s,
                max_requests=s.max_requests,
            )
        phase.ended = time.perf_counter()
        phase.cpu = window.stop(phase.ended - phase.started)
        after = await self._stage_scrape(system)
        if before is not None and after is not None:
            if self.s.risk:
                phase.stage_ms["risk"] = stages.percentiles(
                    stages.merged(b for b, _ in before), stages.merged(a for a, _ in after), "risk"
                )
            phase.statements = stages.per_request(
                [st for _, st in before], [st for _, st in after], cpu.answered(phase.rec.status)
            )
        phase.built_live = feed.built_live - live_before
        summary = phase.summary(s.deadline_s)
        if system == "payswitch":
            self.rate_guess = max(self.rate_guess, summary["throughput_rps"])
        if phase.built_live:
            self.out.notes.append(
                f"{name}: {phase.built_live} requests were built during the phase (prebuilt "
                "pool ran dry): the generator spent extra CPU there"
            )
        risk = phase.stage_ms.get("risk")
        risk_text = (
            f"  risk stage p50 <= {risk['p50_ms']} p99 <= {risk['p99_ms']} ms" if risk else ""
        )
        print(
            f"  {name:<28} {summary['throughput_rps']:>8.1f} rps  "
            f"p50 {summary['latency_ms']['p50']} ms  p99 {summary['latency_ms']['p99']} ms  "
            f"errors {summary['error_count']}  misses {summary['deadline_misses']}{risk_text}",
            flush=True,
        )
        return phase

    async def _stage_scrape(
        self, system: str
    ) -> list[tuple[stages.Buckets, stages.Statements]] | None:
        """Every switch's stage histograms and store statements now (None: not the switch,
        or no metrics port)."""
        if system != "payswitch" or not self.metrics_addresses:
            return None
        try:
            return [
                await asyncio.to_thread(stages.scrape, address)
                for address in self.metrics_addresses
            ]
        except OSError:
            return None

    # -- payswitch ------------------------------------------------------------------------

    async def payswitch(self, run_dir: Path) -> None:
        s = self.s
        store = await asyncio.to_thread(stores.choose, s.store, run_dir, s.synchronous)
        try:
            stack, doc = await asyncio.to_thread(
                world.start_stack,
                run_dir,
                terminals=s.terminals,
                latency=s.latency,
                synchronous=s.synchronous,
                risk=s.risk,
                store=store.url,
                switches=s.switches,
            )
        except BaseException:
            await asyncio.to_thread(store.drop)
            raise
        try:
            sw_id = stack.topology.switch.id
            switch_ids = stack.switch_ids
            try:
                self.metrics_addresses = [stack.metrics_address(i) for i in switch_ids]
            except Exception:  # no metrics port: phases go without stage times
                self.metrics_addresses = []
            pids = {n: p for n in stack.node_ids if (p := stack.pid(n)) is not None}
            pids["generator"] = os.getpid()
            self.out.stack_info = {
                "processes": {
                    n: "switch" if n in switch_ids else stack.topology.node_kind(n)
                    for n in stack.node_ids
                },
                "store": store.described,
                "switches": len(switch_ids),
                "terminals": s.terminals,
                "simulated_latency": s.latency,
            }
            terminals = world.fleet_terminals(doc)
            ghz_terminal = (world.GHZ_TERMINAL, world.merchant_of(doc, world.GHZ_TERMINAL))
            t0 = time.perf_counter()
            elements = await asyncio.to_thread(
                world.secure_elements, [t for t, _ in [*terminals, ghz_terminal]]
            )
            self.out.stack_info["key_injection_s"] = round(time.perf_counter() - t0, 1)
            self.out.stack_info["start_s"] = round(t0 - self.origin, 1)
            print(
                f"payswitch: stack up after {t0 - self.origin:.1f} s; key injection for "
                f"{len(elements)} terminals took {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
            self.fleet = fleet = Fleet(terminals, elements)
            self.topology = stack.topology
            target = loadgen.Target([stack.address(i) for i in switch_ids], s.channels)
            await target.ready()
            await self._payswitch_phases(target, fleet, pids, world.pin_cards(doc))
            if s.risk and s.risk_compare:
                await self._without_risk(run_dir / "without-risk", target, pids)
            await target.close()
            if s.ghz:
                ghz_fleet = Fleet([ghz_terminal], {ghz_terminal[0]: elements[ghz_terminal[0]]})
                await self._ghz(stack.address(sw_id), pids, ghz_fleet)
            await asyncio.to_thread(self._switch_added, stack, run_dir)
        finally:
            await asyncio.to_thread(stack.stop)
            await asyncio.to_thread(store.drop)

    async def _payswitch_phases(
        self, target: loadgen.Target, fleet: Fleet, pids: dict[str, int], pins: dict[str, str]
    ) -> None:
        s = self.s
        approvals = self.approvals = CardFeed(fleet)
        print("payswitch: warm-up (excluded)", flush=True)
        warm_c = min(16, max(s.concurrency))
        self.out.warmup = await self._phase(
            target,
            approvals,
            pids,
            name=f"warmup c={warm_c}",
            system="payswitch",
            mode="warmup",
            level=warm_c,
            duration_s=s.warmup_s,
        )
        print("payswitch: closed loop", flush=True)
        closed: list[Phase] = []
        for c in s.concurrency:
            closed.append(
                await self._phase(
                    target,
                    approvals,
                    pids,
                    name=f"closed c={c}",
                    system="payswitch",
                    mode="closed",
                    level=c,
                    duration_s=s.duration_s,
                )
            )
        self.out.phases += closed
        peak_phase = max(closed, key=lambda p: p.summary(s.deadline_s)["throughput_rps"])
        peak = peak_phase.summary(s.deadline_s)["throughput_rps"]
        if s.profile:
            await self._profile(target, approvals, pids, int(peak_phase.level))
        if s.soak_s > 0:
            await self._soak(target, approvals, pids, peak)
            return
        if s.closed_only:
            return
        await self._sweep(target, fleet, pids, max(peak, 5.0))
        mix_rate = max(round((self.out.best_rate or min(self._swept_rates())) / 2), 1)
        arqcs = await self._arqcs(mix_rate)
        print(f"payswitch: mix at {mix_rate}/s (open loop, {len(arqcs)} chip sales)", flush=True)
        mix = MixFeed(fleet, pins, arqcs=arqcs)
        self.out.phases.append(
            await self._phase(
                target,
                mix,
                pids,
                name=f"mix {mix_rate}/s",
                system="payswitch",
                mode="open",
                level=float(mix_rate),
                duration_s=s.mix_s,
                workload="mix",
            )
        )
        self.out.mix_checks = {
            "retry_answer_mismatches": mix.retry_mismatches,
            "fallbacks_to_approval": mix.fallbacks,
            "weights": mix.weights,
        }
        if s.overload:
            print("payswitch: overload and recovery (open loop)", flush=True)
            # A feed of its own: the approvals feed's leftovers were built before the mix
            # advanced every terminal's DUKPT counter, and would be refused as replays.
            phases, self.out.overload = await overload.run(
                target,
                CardFeed(fleet),
                pids,
                peak_rps=peak,
                quick=s.quick,
                duration_s=s.duration_s,
                deadline_s=s.deadline_s,
                p99_target_ms=s.p99_target_ms,
                max_requests=s.max_requests,
                max_in_flight=s.max_in_flight,
                origin=self.origin,
                metrics_addresses=overload.switch_metrics(self),
            )
            self.out.phases += phases

    async def _arqcs(self, rate: float) -> list[tuple[CardProfile, Any]]:
        """The mix's chip sales' ARQCs, made before its clock starts by the card simulator
        (the issuers' keys in the throwaway token), round robin over the approval cards that
        an issuer has on file; none (the mix then has no chip sales, and says so) if the
        simulator cannot make them."""
        from terminals.card_sim import CardSimError, CardSimulator

        s = self.s
        share = MIX_WEIGHTS.get("emv", 0) / sum(MIX_WEIGHTS.values())
        n = int(rate * s.mix_s * share * 1.3) + 4
        if self.topology is None or not share:
            return []
        sim = CardSimulator(self.topology)
        out: list[tuple[CardProfile, Any]] = []
        cards = list(APPROVALS)
        while cards and len(out) < n:
            for card in list(cards):
                try:
                    emv = await sim.arqc(card.pan, card.minor, card.currency)
                except CardSimError:
                    cards.remove(card)  # not chip-capable in this world
                    continue
                except Exception as exc:  # the mix goes on without chip sales
                    self.out.notes.append(f"no chip sales in the mix: {type(exc).__name__}")
                    return []
                out.append((card, emv))
        return out[:n]

    async def _soak(
        self, target: loadgen.Target, feed: loadgen.Feed, pids: dict[str, int], peak: float
    ) -> None:
        """``soak_s`` at half the closed-loop peak in windows of ``soak_window_s``, every
        process's resident memory after each (``benchmarks.soak``)."""
        s = self.s
        rate = float(max(round(peak * soak.RATE_SHARE), 1))
        n = max(int(s.soak_s // s.soak_window_s), 1)
        print(f"payswitch: soak {n} x {s.soak_window_s:g} s at {rate:g}/s", flush=True)
        windows = []
        for i in range(n):
            phase = await self._phase(
                target,
                feed,
                pids,
                name=f"soak {i + 1}/{n}",
                system="payswitch",
                mode="soak",
                level=rate,
                duration_s=s.soak_window_s,
            )
            summary = phase.summary(s.deadline_s)
            summary["rss_mib"] = await asyncio.to_thread(soak.rss_all, pids)
            windows.append(summary)
        self.out.soak = soak.verdict(rate, windows)

    async def _profile(
        self, target: loadgen.Target, feed: loadgen.Feed, pids: dict[str, int], level: int
    ) -> None:
        """One more closed-loop phase at the peak's concurrency with py-spy on the switch; its
        figures are not reported (sampling slows the switch), only the flame graph."""
        sw = next((n for n, kind in self.out.stack_info["processes"].items() if kind == "switch"))
        svg = self.s.out_dir / "flame-switch.svg"
        print(f"payswitch: profiling the switch at c={level} (py-spy, excluded)", flush=True)
        try:
            proc = cpu.start_profile(pids[sw], svg, self.s.duration_s)
        except (OSError, KeyError) as exc:
            self.out.profile = {"ran": False, "reason": str(exc)}
            return
        phase = await self._phase(
            target,
            feed,
            pids,
            name=f"profiled c={level}",
            system="payswitch",
            mode="profile",
            level=level,
            duration_s=self.s.duration_s,
        )
        result = await asyncio.to_thread(cpu.finish_profile, proc, svg, self.s.duration_s + 30)
        result["phase"] = phase.name
        result["concurrency"] = level
        self.out.profile = result

    async def _without_risk(
        self, run_dir: Path, with_risk: loadgen.Target, with_pids: dict[str, int]
    ) -> None:
        """Issue 14's comparison in the same run: the closed-loop peak's concurrency on a second
        stack, the same in every way but without the risk stage (same token and keys, same
        terminals and feed, a fresh store), after a short excluded warm-up, measured in
        alternating rounds with the stack under test (``RISK_ROUNDS``: with, without, with,
        without...), both stacks up, so that the machine's drift between runs (this VM's
        throughput moved by a third from one run to the next) falls on both sides alike."""
        s = self.s
        closed = [p for p in self.out.phases if p.target == "payswitch" and p.mode == "closed"]
        if not closed:
            return
        peak = max(closed, key=lambda p: p.summary(s.deadline_s)["throughput_rps"])
        level = int(peak.level)
        rounds = 1 if s.quick else RISK_ROUNDS
        print(
            f"payswitch: c={level} with and without the risk stage, {rounds} round(s)", flush=True
        )
        await asyncio.to_thread(run_dir.mkdir, parents=True, exist_ok=True)
        store = await asyncio.to_thread(stores.choose, s.store, run_dir, s.synchronous)
        try:
            stack, _ = await asyncio.to_thread(
                world.start_stack,
                run_dir,
                terminals=s.terminals,
                latency=s.latency,
                synchronous=s.synchronous,
                risk=False,
                store=store.url,
                switches=s.switches,
            )
        except BaseException:
            await asyncio.to_thread(store.drop)
            raise
        pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
        try:
            pids = {n: p for n in stack.node_ids if (p := stack.pid(n)) is not None}
            pids["generator"] = os.getpid()
            target = loadgen.Target([stack.address(i) for i in stack.switch_ids], s.channels)
            await target.ready()
            await self._phase(
                target,
                self.approvals,
                pids,
                name=f"warmup c={level} without risk",
                system="payswitch-without-risk",
                mode="warmup",
                level=level,
                duration_s=min(s.warmup_s, 3.0),
            )
            for r in range(1, rounds + 1):
                sides = []
                for tgt, side_pids, system, label in (
                    (with_risk, with_pids, "payswitch", "with"),
                    (target, pids, "payswitch-without-risk", "without"),
                ):
                    phase = await self._phase(
                        tgt,
                        self.approvals,
                        side_pids,
                        name=f"closed c={level} {label} risk, round {r}",
                        system=system,
                        mode="compare",
                        level=level,
                        duration_s=s.duration_s,
                    )
                    sides.append(phase.summary(s.deadline_s))
                pairs.append((sides[0], sides[1]))
            await target.close()
        finally:
            await asyncio.to_thread(stack.stop)
            await asyncio.to_thread(store.drop)
        self.out.risk_compare = {
            "with_risk": peak.summary(s.deadline_s),
            "rounds": [{"with_risk": w, "without_risk": wo} for w, wo in pairs],
        }

    def _swept_rates(self) -> list[float]:
        return [p.level for p in self.out.phases if p.mode == "open" and p.workload == "approvals"]

    async def _open(
        self, target: loadgen.Target, fleet: Fleet, pids: dict[str, int], rate: float
    ) -> Phase:
        phase = await self._phase(
            target,
            self.approvals,
            pids,
            name=f"open {rate:g}/s",
            system="payswitch",
            mode="open",
            level=rate,
            duration_s=self.s.duration_s,
        )
        self.out.phases.append(phase)
        if meets_target(phase.summary(self.s.deadline_s), self.s.p99_target_ms):
            if self.out.best_rate is None or rate > self.out.best_rate:
                self.out.best_rate = rate
        return phase

    async def _sweep(
        self, target: loadgen.Target, fleet: Fleet, pids: dict[str, int], peak: float
    ) -> None:
        """Low to saturation; then at most ``refine`` bisections between the highest rate that
        met the bar and the lowest above it that did not; and, when even the lowest rate
        missed the bar, up to two lower rates (halving; not in quick runs)."""
        s = self.s
        explicit = s.rates is not None
        rates = s.rates or loadgen.sweep_rates(peak, QUICK_FRACTIONS if s.quick else FULL_FRACTIONS)
        print(f"payswitch: open loop sweep {', '.join(f'{r:g}' for r in rates)} /s", flush=True)
        in_a_row = 0
        for rate in sorted(rates):
            phase = await self._open(target, fleet, pids, rate)
            in_a_row = in_a_row + 1 if saturated(phase.summary(s.deadline_s), s.deadline_s) else 0
            if in_a_row >= 2 and not explicit:
                self.out.notes.append(f"sweep stopped after two saturated rates (at {rate:g}/s)")
                break
        lowest = min(rates)
        for _ in range(0 if explicit or s.quick else 2):
            if self.out.best_rate is not None or lowest <= 1:
                break
            lowest = float(max(round(lowest / 2), 1))
            await self._open(target, fleet, pids, lowest)
        for _ in range(s.refine):
            lo = self.out.best_rate
            above = [r for r in self._swept_rates() if lo is not None and r > lo]
            if lo is None or not above:
                break
            hi = min(above)
            mid = float(round((lo + hi) / 2))
            if hi - lo < max(0.05 * lo, 2) or mid in self._swept_rates():
                break
            await self._open(target, fleet, pids, mid)

    async def _ghz(self, address: str, pids: dict[str, int], fleet: Fleet) -> None:
        s = self.s
        binary = ghz.find_ghz(s.ghz_path)
        if binary is None:
            self.out.ghz = {
                "ran": False,
                "reason": "ghz not found (run benchmarks/install_ghz.sh or pass --ghz PATH)",
            }
            print("ghz: not installed, skipped", flush=True)
            return
        closed = [p for p in self.out.phases if p.mode == "closed" and p.target == "payswitch"]
        ours = next((p for p in closed if p.level == s.ghz_concurrency), None)
        rate = ours.summary(s.deadline_s)["throughput_rps"] if ours else 100.0
        total = min(max(int(rate * s.duration_s), 50), s.max_requests)
        print(f"ghz: c={s.ghz_concurrency}, {total} requests", flush=True)
        result = await asyncio.to_thread(
            ghz.against_switch,
            binary,
            address,
            fleet,
            total=total,
            concurrency=s.ghz_concurrency,
            connections=s.channels,
            deadline_s=s.deadline_s,
            timeout_s=s.duration_s * 3 + 30,
            server_pids={k: v for k, v in pids.items() if k != "generator"},
        )
        self.out.ghz = result
        if result.get("ran"):
            lat = result["latency_ms"]
            print(f"  ghz {result['rps']} rps  p50 {lat['p50']} ms  p99 {lat['p99']} ms")
        else:
            print(f"  ghz failed: {result.get('reason')}", flush=True)

    def _switch_added(self, stack: Any, run_dir: Path) -> None:
        sw_id = stack.topology.switch.id
        switch_ms = hoptimes.switch_ms_by_tx(stack.log_path(sw_id))
        acquirers = [a.id for a in stack.topology.acquirers]
        acq_ms = hoptimes.node_ms_by_rrn(stack.log_path(a) for a in acquirers)
        for phase in self.out.phases:
            if phase.target == "payswitch":
                self.out.switch_added[phase.name] = hoptimes.switch_added(phase, switch_ms, acq_ms)

    # -- ceilings -------------------------------------------------------------------------

    async def ceilings(self, work_dir: Path) -> None:
        s = self.s
        for hops, system in ((1, "echo"), (4, "chain4")):
            print(f"ceiling: {system} ({hops} gRPC hop{'s' if hops > 1 else ''})", flush=True)
            chain = ceiling.Chain(hops, work_dir / system)
            await asyncio.to_thread(chain.start)
            records: dict[str, dict[str, float]] = {}
            try:
                pids = {f"{system}:{n}": p for n, p in chain.pids().items()}
                pids["generator"] = os.getpid()
                target = loadgen.Target(chain.entry, s.channels)
                await target.ready()
                assert self.fleet is not None, "the ceiling reuses the payswitch fleet's terminals"
                feed = CeilingFeed(self.fleet)
                feed.prepare(0)
                await loadgen.closed_loop(
                    target,
                    feed,
                    min(16, max(s.concurrency)),
                    min(s.warmup_s, 2.0),
                    deadline_s=s.deadline_s,
                    max_requests=s.max_requests,
                )
                for c in s.concurrency:
                    self.out.phases.append(
                        await self._phase(
                            target,
                            feed,
                            pids,
                            name=f"{system} c={c}",
                            system=system,
                            mode="closed",
                            level=c,
                            duration_s=s.ceiling_duration_s,
                        )
                    )
                await target.close()
            finally:
                records = await asyncio.to_thread(chain.stop)
            if hops > 1:
                for phase in self.out.phases:
                    if phase.target == system:
                        self.out.forwarder_added[phase.name] = hoptimes.forwarder_added(
                            phase, records
                        )

    async def dependencies(self) -> None:
        s = self.s
        print("dependencies: HSM pool and SQLite store", flush=True)
        quick = s.quick
        self.out.deps = await asyncio.to_thread(
            deps.run_child,
            s.deps_seconds,
            64,
            200 if quick else 1000,
            50 if quick else 300,
            120.0,
        )


async def run(settings: Settings, run_dir: Path) -> Outcome:
    """Every step of the suite; the stack and the ceiling processes are stopped on any exit."""
    runner = Runner(settings)
    world.make_token(run_dir / "softhsm")
    await runner.payswitch(run_dir)
    if settings.ceiling:
        await runner.ceilings(run_dir / "ceiling")
    if settings.deps:
        await runner.dependencies()
    runner.out.wall_s = round(time.perf_counter() - runner.origin, 1)
    return runner.out
