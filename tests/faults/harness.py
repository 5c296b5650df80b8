"""Fault-injection harness: ``python -m tests.faults.harness --seeds 1000 [--payments N]
[--store sqlite|cassandra] [--first-seed S]``.

Per seed: a fresh stack (issuers, schemes, acquirers and the switch as real processes on free
127.0.0.1 ports, fresh books and store), then

1. **chaos**: terminals pay, capture and void through the SDK (idempotent retries of the very
   same request, duplicates, concurrent resends) while the plan's events fire: the switch is
   killed (-9) and restarted on the same store and port, network nodes are restarted, and
   acquirers, schemes and issuers are made slow, failing (UNAVAILABLE or 96) or forgetful (they
   act, then drop the answer) over ``NodeControlService``;
2. **quiescence**: faults cleared and every process up; the terminals resolve what they could
   not (same payment request again; captures and voids under new keys), then the harness polls,
   bounded, until no transaction is PENDING, UNKNOWN or REVERSAL_PENDING;
3. **invariants** (``tests/faults/invariants.py``) against the issuers' books, the switch's
   transactions and its store-and-forward queue (live items and dead letters, read over the
   admin API).

A failing seed prints what broke and the command line that replays it. The scenario (payments,
faults, retry pattern, captures and voids) is a function of the seed (``plan.py``); the
interleaving of real processes is not, so a replay usually, not always, fails the same way.
Exit status: 0 when every seed passed, 1 otherwise. This is a test facility: it needs a
SoftHSM installation (it makes a throwaway token) and, for ``--store cassandra``, the dev
Cassandra node on 127.0.0.1:9042 (a fresh keyspace per seed, dropped afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from payswitch.world.ports import with_free_ports, write_topology
from stack.launcher import Stack

from .disk import SmallDisk, can_mount
from .plan import Plan, make_plan

if TYPE_CHECKING:  # imported where used: the harness sets up its HSM token first
    from terminals.secure_element import SecureElement

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TOPOLOGY = REPO / "topology" / "default.toml"
QUIESCENCE_S = 90.0
# The switch settles a key its dead process left IN_FLIGHT after this long (``[switch]
# abandoned_key_s``, 60 s by default): shortened for the harness so a seed whose kill left one
# does not wait a minute; the catch-up and the retry after quiescence outlast it.
ABANDONED_KEY_S = 10
CATCH_UP_S = 45.0
READY_S = 120.0
# Reversals and advices retried quickly, dead-lettered after a bound a calm network outlasts
# (the harness replays dead letters before its cut-off).
SAF = {
    "max_attempts": 60,
    "base_delay_s": 0.2,
    "max_delay_s": 1.0,
    "attempt_timeout_s": 1.0,
    "lease_s": 3.0,
    "poll_interval_s": 0.2,
    "scan_interval_s": 1.0,
}

Log = Callable[[str], None]


@dataclass
class SeedResult:
    seed: int
    payments: int
    store: str
    switches: int = 1
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # explained leftovers, not failures
    stats: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase, in order

    @property
    def ok(self) -> bool:
        return not self.violations

    def timing(self) -> str:
        """Where the seed's time went, phase by phase (``prepare 1.2 s, start 3.4 s, ...``)."""
        return ", ".join(f"{name} {s:.1f} s" for name, s in self.phases.items())

    def command(self) -> str:
        return (
            f".venv/bin/python -m tests.faults.harness --first-seed {self.seed} --seeds 1"
            f" --payments {self.payments} --store {self.store} --switches {self.switches} --keep"
        )


# (HSM home, the topology's party ids) whose tokens hold every key those parties need.
_CEREMONIES: set[tuple[str, frozenset[str]]] = set()


def _parties(topology: Path) -> frozenset[str]:
    """Every ``id`` of the topology's tables (switch, acquirers, schemes, issuers, ...)."""
    doc = tomllib.loads(topology.read_text())
    ids: set[str] = set()
    for value in doc.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                ids.add(item["id"])
    return frozenset(ids)


def ceremony(topology: Path) -> None:
    """Every key the topology's parties need, in the current (throwaway) token: once per
    token and set of parties. Every seed's topology is the default one on other ports, and
    keys belong to parties, not ports: a second ceremony for the same parties in the same
    token would find them all present. Another topology (other parties, e.g. the node-control
    test's bank-x) gets its own."""
    from hsm.config import hsm_home

    key = (str(hsm_home()), _parties(topology))
    if key in _CEREMONIES:
        return
    subprocess.run(
        [sys.executable, "-m", "payswitch.ceremony", "keys", "--topology", str(topology)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    _CEREMONIES.add(key)


def _prepare(run_dir: Path, topo_path: Path) -> None:
    """The run directory, the default topology on free ports, and its keys."""
    run_dir.mkdir(parents=True, exist_ok=True)
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    doc["switch"]["abandoned_key_s"] = ABANDONED_KEY_S
    # Stand-in on, its files and advices fast: a sale approved in stand-in is advised as soon
    # as its issuer is reachable again.
    doc.setdefault("standin", {}).update(
        enabled=True, files_dir=str(run_dir / "standin"), advice_interval_s=0.5
    )
    doc["saf"] = dict(SAF)
    # The harness triggers its own cut-off (cutoff.py), never the wall clock's.
    settlement = doc.setdefault("settlement", {})
    settlement.update(auto_close=False, dir=str(run_dir / "settlement"))
    # Pay-at-pump completions above the hold (plan.TIP_MERCHANTS).
    fuel = next(m for m in doc["merchants"] if m["id"] == "M-FUEL")
    settlement["tolerance_mccs"] = sorted({*settlement.get("tolerance_mccs", []), fuel["mcc"]})
    write_topology(with_free_ports(doc), topo_path)
    ceremony(topo_path)


def _cassandra_url(seed: int, cluster: bool) -> tuple[str, str, list[str]]:
    """(store URL, fresh keyspace, contact points): the dev node, or the three-node cluster
    (started or reused; CASSANDRA_CLUSTER_BASE places it) with replication 3 and QUORUM."""
    sys.path.insert(0, str(REPO / "tests" / "support"))
    import cassandra_node

    keyspace = f"faults_{seed}_{uuid.uuid4().hex[:8]}"
    if cluster:
        hosts = cassandra_node.start_cluster()
        url = f"cassandra://{','.join(hosts)}:{cassandra_node.PORT}/{keyspace}?replication=3"
        return url, keyspace, hosts
    host = cassandra_node.ensure_single_node()
    return f"cassandra://{host}:{cassandra_node.PORT}/{keyspace}?replication=1", keyspace, [host]


def _drop_keyspace(keyspace: str, hosts: list[str]) -> None:
    from cassandra.cluster import Cluster

    cluster = Cluster(hosts, port=9042)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    finally:
        cluster.shutdown()


async def run_seed(
    seed: int,
    payments: int,
    store: str,
    run_dir: Path,
    log: Log = print,
    switches: int = 1,
    cleanup: list[Callable[[], None]] | None = None,
    injected: dict[str, SecureElement] | None = None,
    on_started: Callable[[], None] | None = None,
    keep_keyspace: bool = False,
) -> SeedResult:
    """One seed, start to finish (the stack is stopped whatever happens). With ``cleanup``
    the seed's keyspace is not dropped here but left there for the caller to drop (blocking,
    off the loop) while it runs the next seed: nothing reads it once the seed is checked, and
    a DROP KEYSPACE on a busy node takes 15-25 s. ``injected``: the terminals' secure
    elements, keys already injected (``inject_terminals``; else injected while the stack
    starts); ``on_started`` is called once the stack serves (the caller may then prepare the
    next seed's terminals, the key ceremony being done). ``switches`` > 1
    (Cassandra only): that many switch processes on the store, terminals spread over them,
    kills on any, every switch but the first with its wall clock skewed (``tamper.py``).
    ``keep_keyspace``: leave the seed's keyspace in place (``--keep``), to read its rows."""
    from payswitch.world.topology import load

    from . import cutoff, invariants
    from .driver import Driver, Terminals

    started = time.monotonic()
    result = SeedResult(seed, payments, store, switches)
    phase = Phases(result.phases)
    disk = None
    if store == "sqlite" and can_mount():
        disk = SmallDisk(run_dir / "disk")
    cluster = store == "cluster"
    plan: Plan = make_plan(
        seed, payments, switches=switches, disk=disk is not None, cluster=cluster
    )
    topo_path = run_dir / "topology.toml"
    await asyncio.to_thread(_prepare, run_dir, topo_path)
    phase("prepare")
    keyspace = None
    store_url = "sqlite"
    hosts: list[str] = []
    if store in ("cassandra", "cluster"):
        store_url, keyspace, hosts = await asyncio.to_thread(_cassandra_url, seed, cluster)
        phase("keyspace")
    elif disk is not None:
        await asyncio.to_thread(disk.mount)
        store_url = f"sqlite:///{disk.path / 'switch.db'}"
    else:
        result.notes.append("no disk faults: mounting the switch's small filesystem needs root")
    # A fresh keyspace's migrations take a while on a busy machine: a longer wait for SERVING.
    ready_s = {"sqlite": 30.0, "cassandra": READY_S, "cluster": 3 * READY_S}[store]
    stack = Stack(
        topo_path, run_dir, store=store_url, seed=seed, switches=switches, ready_timeout=ready_s
    )
    slow_flag = run_dir / "slow-store"
    for node in plan.switches:
        _tamper(stack, node, plan.skew_s if node != plan.switches[0] else 0.0, slow_flag)
    driver = None
    terminals = None
    try:
        # The terminals' key injection (the KIF, its own processes) needs nothing of the
        # stack: done while the stack starts.
        wanted = terminal_ids(plan)
        if injected is not None and sorted(injected) == wanted:
            se_of = injected
            await asyncio.to_thread(_start, stack)
        else:
            injecting = inject_terminals(wanted)
            se_of, _ = await asyncio.gather(injecting, asyncio.to_thread(_start, stack))
        phase("start")
        if on_started is not None:
            on_started()
        terminals = Terminals(stack, plan, se_of)
        driver = Driver(stack, plan, terminals, log, disk, slow_flag)
        log(f"[seed {seed}] {payments} payments, {len(plan.events)} events, store {store}"
            f", switches {len(plan.switches)} (skew {plan.skew_s:+.1f} s)")  # fmt: skip
        phase("terminals")
        await driver.run()
        phase("chaos")
        await driver.calm()
        phase("calm")
        await driver.catch_up(CATCH_UP_S)
        phase("catch-up")
        views = await _quiesce(driver, QUIESCENCE_S)
        replayed = await driver.replay_dead_letters()
        if replayed:
            driver.notes += replayed
            views = await _quiesce(driver, QUIESCENCE_S)
        result.violations += await _saf_leftovers(driver, views)
        phase("quiesce")
        result.violations += await driver.recheck_keys()
        phase("recheck")
        # Two cut-offs: the first settles the sales, the refunds the plan makes go against
        # settled sales (a stand-in sale is posted at the issuer only at clearing: a refund
        # before that is declined 12, nothing to credit), the second settles the refunds.
        result.violations += await cutoff.cut_off(stack)
        phase("cut-off 1")
        views = {s.payment.index: await driver.status(s) for s in driver.seen}
        await driver.refunds(views)
        await _quiesce_refunds(driver, QUIESCENCE_S)
        phase("refunds")
        result.violations += await cutoff.cut_off(stack)
        phase("cut-off 2")
        views = {s.payment.index: await driver.status(s) for s in driver.seen}
        topology = load(topo_path)
        books = invariants.read_books(stack.books_dir, [i.id for i in topology.issuers])
        result.violations += invariants.check(topology, driver.seen, views, books)
        money, money_stats = await cutoff.money_after(stack, run_dir / "settlement")
        result.violations += money
        result.notes += driver.notes
        exits = {n: c for n, c in stack.unexpected_exits().items()}
        result.violations += [f"{n} exited on its own with code {c}" for n, c in exits.items()]
        result.stats = _stats(driver, views) | money_stats | _advices(stack.books_dir)
        result.stats |= _store_errors(run_dir)
        phase("invariants")
    finally:
        if driver is not None:
            await driver.close()
        if terminals is not None:
            await terminals.close()
        await asyncio.to_thread(_halt, stack)
        if disk is not None:
            await asyncio.to_thread(disk.unmount, run_dir)
        if keyspace is not None and keep_keyspace:
            log(f"[seed {seed}] keyspace kept for reading: {keyspace} (drop it when done)")
        elif keyspace is not None and cleanup is not None:
            cleanup.append(functools.partial(_drop_keyspace, keyspace, hosts))
        elif keyspace is not None:
            await asyncio.to_thread(_drop_keyspace, keyspace, hosts)
        phase("stop")
    result.seconds = time.monotonic() - started
    return result


def terminal_ids(plan: Plan) -> list[str]:
    """The terminals a plan pays at."""
    return sorted({p.terminal_id for p in plan.payments})


async def inject_terminals(terminal_ids: list[str]) -> dict[str, SecureElement]:
    """A fresh secure element per terminal, its initial key injected by the KIF (one KIF
    process each, about 0.4 s of CPU: a third of what the stack's start costs besides).
    Needs nothing of a stack: only the key ceremony's KIF keys."""
    from terminals.keys import inject_from_kif
    from terminals.secure_element import SecureElement

    se_of = {tid: SecureElement() for tid in terminal_ids}
    await asyncio.gather(*(inject_from_kif(se, t) for t, se in se_of.items()))
    return se_of


def _start(stack: Stack) -> None:
    """``stack.start`` in two tiers, not four: every network node at once, then the switches.
    No network node calls another while it starts (schemes, acquirers and issuers dial their
    peers per request), so their launcher's tiers only serialise three start-ups; the switch
    still comes last (it reads the issuers' stand-in files at start)."""
    children = stack._children  # the launcher's own children, started as Stack.start does
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    if stack.tls or stack.network_tls:
        stack.make_certs()
    try:
        for tiers in (("issuer", "scheme", "acquirer"), ("switch",)):
            tier = [c for c in children.values() if c.kind in tiers]
            for child in tier:
                stack._spawn(child)
            stack._wait_serving(tier, stack.ready_timeout)
    except BaseException:
        stack.stop()
        raise


def _halt(stack: Stack) -> None:
    """Stop the seed's stack by SIGKILL, every process at once: everything the seed checks
    was read before, and nothing of it outlives the seed, so the graceful stop's grace
    periods bought nothing (a seed's logs are written unbuffered as they go)."""
    for node in stack.node_ids:
        stack.kill(node, signal.SIGKILL, wait=False)
    stack.stop()  # reaps them (and joins their log pumps)


class Phases:
    """Charges the time since the last call to a named phase (a phase met twice adds up)."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into = into
        self.mark = time.monotonic()

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        self.into[name] = self.into.get(name, 0.0) + now - self.mark
        self.mark = now


def _tamper(stack: Stack, node: str, skew_s: float, slow_flag: Path) -> None:
    """Start ``node`` (a switch) through ``tests.faults.tamper``, on every (re)start: its wall
    clock off by ``skew_s``, its store slow while ``slow_flag`` exists."""
    argv = stack._child(node).argv  # the launcher's command line for it: [python, -m, module...]
    assert argv[1] == "-m", argv
    ours = ["--skew", str(skew_s), "--slow-store", str(slow_flag)]
    argv[1:3] = ["-m", "tests.faults.tamper", *ours, argv[2]]


async def _quiesce(driver, bound_s: float) -> dict:
    """Poll the switch, bounded, until no payment's transaction is still in flight."""

    async def views() -> dict:
        return {s.payment.index: await driver.status(s) for s in driver.seen}

    return await _until_quiet(driver, bound_s, views)


async def _quiesce_refunds(driver, bound_s: float) -> None:
    """Poll, bounded, until no refund is still in flight: a refund answered 91 or 96 is
    reversed by the switch's recovery past its deadline, and cut-off 2 and the invariants
    must see it done (seed 3018)."""

    async def views() -> dict:
        return {
            s.payment.index: await driver.refund_status(s)
            for s in driver.seen
            if s.refund is not None
        }

    await _until_quiet(driver, bound_s, views)


async def _until_quiet(driver, bound_s: float, read) -> dict:
    """``read()``'s views once none is open and the SAF queue is empty, or at ``bound_s``."""
    from .invariants import is_open

    end = time.monotonic() + bound_s
    while True:
        views = await read()
        busy = any(is_open(v) for v in views.values()) or await driver.saf_items(False)
        if not busy or time.monotonic() > end:
            return views
        await asyncio.sleep(0.1)  # reads over the switch's APIs: quiescence is seen at once


async def _saf_leftovers(driver, views: dict) -> list[str]:
    """The store-and-forward queue is drained: no live item, no dead letter. Each leftover is
    listed with its transaction's state, which explains it (or shows what went wrong)."""
    state = {v.transaction_id: v.state for v in views.values() if v is not None}
    bad = []
    for dead in (False, True):
        for item in await driver.saf_items(dead):
            bad.append(
                f"SAF {'dead letter' if dead else 'item'} {item.kind} for tx "
                f"{item.transaction_id} ({state.get(item.transaction_id, 'not a planned payment')})"
                f": {item.attempts} attempts, last error {item.last_error!r}"
            )
    return bad


def _stats(driver, views: dict) -> dict[str, int]:
    stats: dict[str, int] = {}
    for s in driver.seen:
        code = s.answers[0][0] if s.answers else "none"
        stats[f"answer {code}"] = stats.get(f"answer {code}", 0) + 1
    for v in views.values():
        state = v.state if v is not None else "no-transaction"
        stats[state] = stats.get(state, 0) + 1
    return dict(sorted(stats.items()))


def _advices(books_dir: Path) -> dict[str, int]:
    """How many stand-in advices (and their reversals) the issuers took, by kind."""
    counts: dict[str, int] = {}
    for path in sorted(books_dir.glob("*.db")):
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            for kind, n in db.execute("SELECT kind, count(*) FROM advices GROUP BY kind"):
                counts[f"advices {kind}"] = counts.get(f"advices {kind}", 0) + n
        finally:
            db.close()
    return counts


def _store_errors(run_dir: Path) -> dict[str, int]:
    """How often the switches logged a store failure (a full disk, a lost quorum...)."""
    events = ('"store_failure"', '"record_failed"', "StoreUnavailable")
    n = 0
    for log in run_dir.glob("switch-*.log"):
        n += sum(any(e in line for e in events) for line in log.open(errors="replace"))
    return {"store errors logged": n} if n else {}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.faults.harness", description=__doc__)
    p.add_argument("--seeds", type=int, default=10, help="how many seeds to run")
    p.add_argument("--first-seed", type=int, default=1, help="the first seed")
    p.add_argument("--payments", type=int, default=40, help="payments per seed")
    p.add_argument(
        "--store",
        choices=("sqlite", "cassandra", "cluster"),
        default="sqlite",
        help="cluster: three Cassandra nodes (RF 3, QUORUM) killed and restarted; left running",
    )
    p.add_argument(
        "--switches", type=int, default=1, help="switch processes (more than 1: cassandra)"
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep every run directory (logs, books) and Cassandra keyspace",
    )
    p.add_argument("--work-dir", default=None, help="where run directories go (default: a tmp)")
    return p.parse_args(argv)


async def _main(args: argparse.Namespace) -> int:
    from hsm.testing import process_test_config

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="payswitch-faults-"))
    process_test_config(work / "softhsm")
    # SIGTERM (a campaign stopped early) cancels the run: the seed's stack is stopped, its
    # disk unmounted and its keyspace (and the previous seed's) dropped on the way out.
    me = asyncio.current_task()
    assert me is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, me.cancel)
    failed: list[SeedResult] = []
    drops: list[asyncio.Future[None]] = []  # each seed's keyspace drop, after the one before
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    # The next seed's terminals get their keys while this seed runs (its chaos mostly waits
    # on the plan's faults): fresh secure elements, made earlier, nothing shared.
    ahead: dict[int, asyncio.Task[dict[str, SecureElement]]] = {}

    def prepare_next(seed: int) -> None:
        if seed + 1 in seeds:
            plan = make_plan(seed + 1, args.payments, switches=args.switches)
            ahead[seed + 1] = asyncio.ensure_future(inject_terminals(terminal_ids(plan)))

    try:
        for seed in seeds:
            injected = None
            if seed in ahead:
                try:
                    injected = await ahead.pop(seed)
                except Exception as exc:  # injected again, the usual way, by the seed
                    print(f"[seed {seed}] keys injected ahead failed: {exc}", flush=True)
            await _seed(args, work, seed, failed, drops, injected, partial(prepare_next, seed))
    finally:
        for task in ahead.values():
            task.cancel()
        await asyncio.gather(*ahead.values(), return_exceptions=True)
        if drops:
            await drops[-1]
    print(f"{args.seeds - len(failed)}/{args.seeds} seeds passed", flush=True)
    return 1 if failed else 0


async def _cleanup(work: list[Callable[[], None]], after: asyncio.Future[None] | None) -> None:
    """A seed's deferred cleanup, after the one before it (at most one drop at a time)."""
    if after is not None:
        await after
    for fn in work:
        try:
            await asyncio.to_thread(fn)
        except Exception as exc:  # a keyspace left behind fails no seed; it is said
            print(f"cleanup failed: {type(exc).__name__}: {exc}", flush=True)


async def _seed(
    args: argparse.Namespace,
    work: Path,
    seed: int,
    failed: list[SeedResult],
    drops: list[asyncio.Future[None]],
    injected: dict[str, SecureElement] | None = None,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Run and report one seed; its cleanup is left under way in ``drops``."""
    run_dir = work / f"seed-{seed}"
    cleanup: list[Callable[[], None]] = []
    started = time.monotonic()
    try:
        result = await run_seed(
            seed,
            args.payments,
            args.store,
            run_dir,
            switches=args.switches,
            cleanup=cleanup,
            injected=injected,
            on_started=on_started,
            keep_keyspace=args.keep,
        )
    except Exception as exc:  # a harness failure fails the seed, the run goes on
        result = SeedResult(seed, args.payments, args.store, args.switches)
        result.violations = [f"harness error: {type(exc).__name__}: {exc}"]
        result.seconds = time.monotonic() - started
        traceback.print_exc()
    finally:
        # Under way even when the seed was cancelled (SIGTERM): _main awaits the last one.
        drops.append(asyncio.ensure_future(_cleanup(cleanup, drops[-1] if drops else None)))
    status = "ok" if result.ok else "FAILED"
    print(f"[seed {seed}] {status} in {result.seconds:.1f} s: {result.stats}", flush=True)
    print(f"[seed {seed}]   time: {result.timing()}", flush=True)
    for line in result.notes:
        print(f"[seed {seed}]   note: {line}", flush=True)
    if result.ok and not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    if not result.ok:
        failed.append(result)
        for line in result.violations:
            print(f"[seed {seed}]   {line}", flush=True)
        print(f"[seed {seed}] logs and books: {run_dir}", flush=True)
        print(f"[seed {seed}] replay: {result.command()}", flush=True)


def main(argv: list[str] | None = None) -> None:
    import uvloop

    sys.exit(uvloop.run(_main(parse_args(argv))))


if __name__ == "__main__":
    main()
