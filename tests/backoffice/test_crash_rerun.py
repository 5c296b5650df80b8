"""A crash (kill -9) at every crash point of the back office, then a rerun, ends with the same
books, ledger, transactions, batches and recon issues as an uninterrupted run of the same day.

The day is generated once (``benchmarks.day.generate``: a few hundred transactions with the
injected discrepancies, SQLite) and kept as a golden copy; the network nodes (acquirers,
schemes, issuers) run once as processes for the whole module. Each case starts from the golden
copy (the store file copied, the issuers' books restored into the files the running issuers
hold with SQLite's backup API, the settlement folder reset), runs the cut-off then the
reconciliation as processes with ``PAYSWITCH_CRASH_AT=<point>:1`` (the first pass through the
point is after a first page is durable), checks that one of them died by SIGKILL, reruns from
that step without it and compares everything with the reference run.

The crash points are the settlement run's steps' (``<step>.item`` for each of its registry
``STEPS``) and every literal ``crashpoint("<step>.<where>")`` in the parties' sources (the
ledger's, the reconciliation's), so a step that adds one is covered without editing this file.

Cassandra (the shared node on 127.0.0.1:9042): CI runs one case, the same day generated into
the test process's contract keyspace (``tests/store/cassandra_kit.py``: migrated once, emptied
before each use, dropped at the end of the session), a crash at every point in turn on it (each
rerun dies at the next point, the last rerun ends), then compares the store as its interface
reads it (``store_view``) with the SQLite reference's: the backends must end with the same
books. With ``PAYSWITCH_CRASH_BACKENDS=sqlite,cassandra`` (``make crash-rerun-all``, not in CI)
every point is also its own case on each backend.
"""

from __future__ import annotations

import ast
import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import cassandra_kit  # tests/store/cassandra_kit.py: this folder's conftest puts it on the path
import pytest

from benchmarks.day.inject import read_expected
from benchmarks.day.run import cutoff_argv
from benchmarks.day.world import start_nodes, write_world
from payswitch.crashpoint import ENV
from payswitch.world.topology import load as load_topology
from switch.backoffice.settlement.steps import STEPS
from switch.store import open_store

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("switch", "payswitch", "issuer", "acquirer", "scheme", "network")
COUNT = 400
SEED = 2026
NOW = 1_796_650_000.0  # the cut-off instant of every run: the same clearing files and reports
STEP_TIMEOUT_S = 120
ONLINE_POINTS = ("capture.", "refund.")
# The order a cut-off then recon pass the points (the ledger's first page is clear's).
IN_TURN = ("sweep.item", "close.item", "clear.item", "ledger.posting", "settle.item",
           "apply.item", "expire.item", "recon.page")  # fmt: skip
BACKENDS = tuple(os.environ.get("PAYSWITCH_CRASH_BACKENDS", "sqlite").split(","))


def crash_points() -> list[str]:
    """The settlement run's steps' points (``<step>.item``, from its registry ``STEPS``) and
    every literal ``crashpoint("...")`` argument in the parties' sources (the ledger's, the
    reconciliation's), sorted."""
    found = {f"{step.name}.item" for step in STEPS}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            text = path.read_text()
            if "crashpoint(" not in text:
                continue
            for node in ast.walk(ast.parse(text)):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", getattr(node.func, "attr", "")) == "crashpoint"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    found.add(node.args[0].value)
    # The online operations' points (a capture's, a refund's) kill a switch mid-request: they
    # are tested on a running switch (tests/e2e/test_void_crash.py), not by a cut-off's rerun.
    return sorted(p for p in found if not p.startswith(ONLINE_POINTS))


POINTS = crash_points()


def generate_argv(store: str, topology: Path, out: Path) -> list[str]:
    """The seeded day (the same transactions on any backend), its books and files in ``out``."""
    return [sys.executable, "-m", "benchmarks.day.generate", "--store", store,
            "--topology", str(topology), "--books", str(out / "books"), "--count", str(COUNT),
            "--seed", str(SEED), "--per-kind", "1", "--cutoff", str(NOW - 60),
            "--expected", str(out / "expected.json"),
            "--settlement-dir", str(out / "settlement")]  # fmt: skip


class World:
    def __init__(self, root: Path, topology: Path, golden: Path) -> None:
        self.root = root
        self.topology = topology
        self.golden = golden
        self.books = root / "books"
        self.cassandra: dict[Path, str] = {}  # Cassandra cases: case folder -> store URL

    def store(self, case: Path) -> str:
        return self.cassandra.get(case) or f"sqlite:///{case / 'switch.db'}"

    def restore(self, case: Path, backend: str = "sqlite") -> None:
        """The golden day into the case's store (SQLite: the golden file copied; Cassandra:
        the same seeded day generated into the test process's contract keyspace, emptied
        first: ``tests/store/cassandra_kit.py``), the running issuers' books, the settlement
        folder."""
        case.mkdir(parents=True)
        if backend == "cassandra":
            self.cassandra[case] = cassandra_kit.contract_url(case)
            scratch = case / "generated"  # its books and files: the golden ones are the same
            done = subprocess.run(
                generate_argv(self.store(case), self.topology, scratch),
                cwd=REPO, capture_output=True, text=True, timeout=STEP_TIMEOUT_S,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr[-3000:]
        else:
            _copy_db(self.golden / "switch.db", case / "switch.db")
        for src in sorted((self.golden / "books").glob("*.db")):
            _copy_db(src, self.books / src.name)
        shutil.rmtree(self.root / "settlement", ignore_errors=True)
        shutil.copytree(self.golden / "settlement", self.root / "settlement")

    def steps(self, case: Path) -> list[list[str]]:
        store = self.store(case)
        bin_dir = Path(sys.executable).parent
        cutoff = [*cutoff_argv(store, self.topology), "--now", str(NOW)]
        recon = [str(bin_dir / "payswitch-recon"), "--store", store, "run",
                 "--dir", str(self.root / "settlement"),
                 "--books", *sorted(str(p) for p in self.books.glob("*.db")),
                 "--topology", str(self.topology), "--json"]  # fmt: skip
        return [cutoff, recon]

    def run(self, case: Path, crash: str | None = None, start: int = 0) -> int | None:
        """Run the steps from ``start``; with ``crash``, the index of the step that died by
        SIGKILL (the rest not run), else None. A step failing otherwise fails the test."""
        env = {k: v for k, v in os.environ.items() if k != ENV}
        if crash is not None:
            env[ENV] = crash
        for i, argv in enumerate(self.steps(case)[start:], start):
            done = subprocess.run(
                argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=STEP_TIMEOUT_S
            )
            if done.returncode == -signal.SIGKILL and crash is not None:
                return i
            assert done.returncode in (0, 1), (argv[:3], done.returncode, done.stderr[-3000:])
        return None


def _copy_db(src: Path, dst: Path) -> None:
    """A consistent copy of one SQLite database into ``dst`` (which may be open elsewhere)."""
    with closing(sqlite3.connect(src)) as a, closing(sqlite3.connect(dst)) as b:
        a.backup(b)


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
        return sorted(c.execute(sql).fetchall())


async def _gather(calls: list[Any]) -> list[Any]:
    """The store calls in bounded groups, concurrently (a Cassandra read is a round trip)."""
    out: list[Any] = []
    for i in range(0, len(calls), 64):
        out += await asyncio.gather(*calls[i : i + 64])
    return out


async def _store_view(url: str, ids: list[str], terminals: list[str]) -> dict[str, Any]:
    async with open_store(url) as store:
        txs = await store.get_transactions(ids)
        infos = [b for bs in await _gather([store.batches_of(t, 1_000) for t in terminals])
                 for b in bs]  # fmt: skip
        contents = await _gather([store.batch_items(b.terminal_id, b.batch_no) for b in infos])
        lines = []
        for currency in await store.ledger_currencies():
            for e in await store.ledger_entries(currency):
                lines.append((e.posting_id, e.line_no, e.account, e.currency, e.amount_minor))
        found = await _gather([store.ledger_get(p) for p in sorted({line[0] for line in lines})])
        issues = await store.recon_issues()
    assert None not in found
    return {
        "view.transactions": sorted(
            (t.id, t.state.value, t.captured_minor, t.refunded_minor, t.amount_minor) for t in txs
        ),
        "view.batches": sorted((b.terminal_id, b.batch_no, b.state.value) for b in infos),
        "view.batch_items": sorted(
            (b.terminal_id, i.transaction_id, b.batch_no, i.kind.value, i.amount_minor)
            for b, items in zip(infos, contents, strict=True)
            for i in items
        ),
        "view.postings": [
            (p.posting_id, p.transaction_id, p.kind, p.rrn, p.currency) for p in found
        ],
        "view.lines": sorted(lines),
        "view.issues": sorted(
            (i.type, i.kind, i.rrn, i.transaction_id, i.status.value) for i in issues
        ),
    }


def store_view(world: World, case: Path) -> dict[str, Any]:
    """The case's store as its interface reads it, on any backend: the golden day's
    transactions, every terminal's batches and items, the ledger's postings and lines (not
    their times), the recon issues."""
    ids = [r[0] for r in _rows(world.golden / "switch.db", "SELECT id FROM transactions")]
    terminals = [t.id for t in load_topology(world.topology).terminals]
    return asyncio.run(_store_view(world.store(case), ids, terminals))


def books(world: World) -> dict[str, Any]:
    """Each issuer's books (accounts, holds, advices, presentments, chargebacks)."""
    out: dict[str, Any] = {}
    for db in sorted(world.books.glob("*.db")):
        out[f"{db.stem}.accounts"] = _rows(db, "SELECT id, balance, held, open_holds FROM accounts")
        out[f"{db.stem}.authorizations"] = _rows(
            db, "SELECT rrn, state, amount, posted, refunded FROM authorizations"
        )
        out[f"{db.stem}.advices"] = _rows(db, "SELECT kind, rrn, original_rrn, amount FROM advices")
        out[f"{db.stem}.presentments"] = _rows(
            db, "SELECT kind, rrn, transaction_id, amount, posted, status, flags FROM presentments"
        )
        out[f"{db.stem}.chargebacks"] = _rows(
            db, "SELECT chargeback_id, amount, state FROM chargebacks"
        )
    return out


def snapshot(world: World, case: Path) -> dict[str, Any]:
    """What must be the same after a crash and a rerun: each issuer's books, the store as its
    interface reads it (``store_view``) and, on SQLite, its rows as stored: every
    transaction's state and amounts, the batches and their items, every ledger posting and
    line (not their times), the recon issues."""
    out = {**books(world), **store_view(world, case)}
    if case in world.cassandra:
        return out
    store = case / "switch.db"
    out |= {
        "sql.transactions": _rows(
            store,
            "SELECT id, state, captured_minor, refunded_minor, amount_minor FROM transactions",
        ),
        "sql.batches": _rows(store, "SELECT terminal_id, batch_no, state FROM batch_log"),
        "sql.batch_items": _rows(
            store,
            "SELECT terminal_id, transaction_id, batch_no, kind, amount_minor FROM batch_items",
        ),
        "sql.postings": _rows(
            store, "SELECT posting_id, transaction_id, kind, rrn, currency FROM ledger_postings"
        ),
        "sql.lines": _rows(
            store, "SELECT posting_id, line_no, account, currency, amount_minor FROM ledger_lines"
        ),
        "sql.issues": _rows(
            store, "SELECT type, kind, rrn, transaction_id, status FROM recon_issues"
        ),
    }
    return out


def backend_neutral(snap: dict[str, Any]) -> dict[str, Any]:
    """A snapshot without its SQLite-only rows: what two backends' runs must share."""
    return {k: v for k, v in snap.items() if not k.startswith("sql.")}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("crash-day")
    topology = write_world(root, terminals=6)
    golden = root / "golden"
    store = f"sqlite:///{golden / 'switch.db'}"
    done = subprocess.run(
        generate_argv(store, topology, golden),
        cwd=REPO, capture_output=True, text=True, timeout=STEP_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (golden / "settlement").mkdir(exist_ok=True)
    shutil.copytree(golden / "books", root / "books")
    stack = start_nodes(topology, root)
    try:
        yield World(root, topology, golden)
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def reference(world: World) -> dict[str, Any]:
    """The uninterrupted run of the golden day."""
    case = world.root / "reference"
    world.restore(case)
    assert world.run(case) is None
    return snapshot(world, case)


def test_the_uninterrupted_day_reconciles_to_exactly_the_injected_set(world, reference):
    found = {(t, k, rrn) for t, k, rrn, _, _ in reference["sql.issues"]}
    assert found == read_expected(world.golden / "expected.json")
    assert reference["sql.lines"], "the cut-off posted to the ledger"
    assert reference["view.lines"] and reference["view.issues"], "the store view reads them"
    assert POINTS, "the back office has crash points"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("point", POINTS)
def test_a_crash_then_a_rerun_ends_as_an_uninterrupted_run(world, reference, point, backend):
    case = world.root / f"crash-{point}-{backend}"
    world.restore(case, backend)
    died = world.run(case, crash=f"{point}:1")
    assert died is not None, f"{point}: no step died by SIGKILL (point not reached)"
    assert world.run(case, start=died) is None
    want = reference if backend == "sqlite" else backend_neutral(reference)
    assert snapshot(world, case) == want


def test_a_crash_at_every_point_in_turn_on_cassandra_ends_as_the_uninterrupted_sqlite_day(
    world, reference
):
    """One Cassandra keyspace, one day: each run dies at the next point (in the order the
    cut-off then recon pass them), the run after the last ends; the store and the books are
    then those of SQLite's uninterrupted run."""
    case = world.root / "cassandra-in-turn"
    points = [p for p in IN_TURN if p in POINTS] + [p for p in POINTS if p not in IN_TURN]
    world.restore(case, "cassandra")
    start, died_at = 0, []
    for point in points:
        died = world.run(case, crash=f"{point}:1", start=start)
        if died is not None:
            died_at.append(point)
            start = died
    assert world.run(case, start=start) is None
    assert died_at == points, "every point is passed in turn"
    assert snapshot(world, case) == backend_neutral(reference)
