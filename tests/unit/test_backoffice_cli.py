"""``payswitch-backoffice cutoff`` as its own process on a real SQLite store: one JSON line per
step, bad arguments refused (exit 2, naming the argument, nothing run), and a crash (SIGKILL at
a crash point) in the middle of ``clear`` followed by a rerun ends as an uninterrupted run:
no clearing file until it is whole, the batch cleared once, each record presented once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from storekit_path import new_tx

from payswitch.settlement.report import ReportWriter
from switch.domain.batches import BatchItem, BatchState, ItemKind
from switch.domain.transactions import Changes, TxState
from switch.store import open_store

REPO = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000.0
TOPOLOGY = """
[network]
tls = false

[settlement]
dir = "{dir}"

[[acquirers]]
id = "ACQ1"
listen = "127.0.0.1:9"

[[merchants]]
id = "M001"
mcc = "5411"
acquirers = []

[[terminals]]
id = "T0001"
merchant = "M001"
"""


def cli(*args: str, crash_at: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PAYSWITCH_CRASH_AT"}
    if crash_at:
        env["PAYSWITCH_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "switch.cli.backoffice", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip


@pytest.fixture
async def world(tmp_path: Path) -> tuple[str, Path, Path]:
    """A store with three captured sales in terminal T0001's open batch; the topology file."""
    url = f"sqlite:///{tmp_path}/s.db"
    store = open_store(url)
    await store.open()
    try:
        for _ in range(3):
            tx = new_tx(acquirer_id="ACQ1")
            await store.insert_transaction(tx)
            await store.transition(tx.id, TxState.RECEIVED, TxState.PENDING)
            await store.transition(tx.id, TxState.PENDING, TxState.APPROVED)
            await store.transition(
                tx.id, TxState.APPROVED, TxState.CAPTURED, Changes(captured_minor=1000)
            )
            item = BatchItem(tx.id, ItemKind.SALE, 1000, "EUR", "visa", NOW)
            await store.join_batch("T0001", item, NOW)
    finally:
        await store.close()
    topo = tmp_path / "t.toml"
    topo.write_text(TOPOLOGY.format(dir=tmp_path / "settle"))
    return url, topo, tmp_path / "settle"


async def _batches(url: str) -> list[tuple[int, BatchState]]:
    store = open_store(url)
    await store.open()
    try:
        return [(b.batch_no, b.state) for b in await store.batches_of("T0001")]
    finally:
        await store.close()


def _clearing(settle: Path) -> list[Path]:
    return sorted((settle / "clearing" / "ACQ1").glob("*.jsonl"))


async def test_a_run_prints_one_json_line_per_step(world) -> None:
    url, topo, settle = world
    steps = "sweep,close,clear"
    done = cli("cutoff", "--topology", str(topo), "--store", url, "--now", str(NOW),
               "--steps", steps)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(x["step"], x["rows"]) for x in lines] == [("sweep", 0), ("close", 1), ("clear", 3)]
    assert all(isinstance(x["seconds"], float) for x in lines)
    [path] = _clearing(settle)
    assert len(path.read_text().splitlines()) == 5  # header, 3 presentments, trailer
    assert await _batches(url) == [(1, BatchState.CLEARED)]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--now", "yesterday"], "--now"),
        (["--now", "-5"], "--now"),
        (["--steps", "close,teleport"], "--steps"),
        (["--store", "mongo://x"], "--store"),
    ],
)
async def test_bad_arguments_exit_2_naming_them_and_run_nothing(world, args, named) -> None:
    url, topo, settle = world
    base = {"--topology": str(topo), "--store": url}
    for k, v in zip(args[::2], args[1::2], strict=True):
        base[k] = v
    done = cli("cutoff", *(x for kv in base.items() for x in kv))
    assert done.returncode == 2 and named in done.stderr and done.stdout == ""
    assert not settle.exists()
    assert await _batches(url) == []  # nothing closed


async def test_a_missing_topology_is_named(world) -> None:
    url, _, _ = world
    done = cli("cutoff", "--topology", "/nonexistent/t.toml", "--store", url)
    assert done.returncode == 2 and "--topology" in done.stderr


async def test_a_crash_in_clear_then_a_rerun_clears_each_sale_once(world) -> None:
    url, topo, settle = world
    args = ("cutoff", "--topology", str(topo), "--store", url, "--now", str(NOW),
            "--steps", "close,clear")  # fmt: skip
    crashed = cli(*args, crash_at="clear.item:1")
    assert crashed.returncode == -signal.SIGKILL
    assert _clearing(settle) == []  # only a temporary file: nothing looks complete
    assert await _batches(url) == [(1, BatchState.CLOSED)]
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    [path] = _clearing(settle)
    ids = [json.loads(x)["transaction_id"] for x in path.read_text().splitlines()[1:-1]]
    assert len(ids) == len(set(ids)) == 3
    assert not list((settle / "clearing" / "ACQ1").glob("*.tmp"))
    assert await _batches(url) == [(1, BatchState.CLEARED)]


def _report(settle: Path, tx_ids: list[str]) -> Path:
    """A streamed settlement report of ACQ1 settling every one of ``tx_ids``, plus one the
    switch does not know (left alone)."""
    writer = ReportWriter(settle, "ACQ1", "ACQ1-2027-01-15-0001", NOW)
    for n, tx_id in enumerate([*tx_ids, "unknown-tx"]):
        writer.add(
            {"transaction_id": tx_id, "rrn": f"{n:012d}", "kind": "CAPTURE",
             "amount_minor": 1000, "currency": "EUR", "interchange_minor": 5,
             "scheme_fee_minor": 1, "status": "SETTLED", "reason": ""}
        )  # fmt: skip
    return writer.finish()


async def _states(url: str, ids: list[str]) -> list[tuple[TxState, int]]:
    store = open_store(url)
    await store.open()
    try:
        return [(t.state, t.version) for t in await store.get_transactions(ids)]
    finally:
        await store.close()


async def test_a_crash_in_apply_then_a_rerun_settles_each_sale_once(world) -> None:
    url, topo, settle = world
    first = cli("cutoff", "--topology", str(topo), "--store", url, "--now", str(NOW),
                "--steps", "close,clear")  # fmt: skip
    assert first.returncode == 0, first.stderr
    [path] = _clearing(settle)
    ids = [json.loads(x)["transaction_id"] for x in path.read_text().splitlines()[1:-1]]
    _report(settle, ids)
    before = await _states(url, ids)
    args = ("cutoff", "--topology", str(topo), "--store", url, "--now", str(NOW),
            "--steps", "apply")  # fmt: skip
    crashed = cli(*args, crash_at="apply.item:1")  # after the page is settled, before the mark
    assert crashed.returncode == -signal.SIGKILL
    after_crash = await _states(url, ids)
    assert [s for s, _ in after_crash] == [TxState.SETTLED] * 3
    assert not (settle / "applied" / "ACQ1" / "ACQ1-2027-01-15-0001").exists()
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert [json.loads(x)["rows"] for x in again.stdout.splitlines()] == [4]
    assert await _states(url, ids) == after_crash  # nothing moved twice
    assert [v for _, v in after_crash] == [v + 1 for _, v in before]
    assert (settle / "applied" / "ACQ1" / "ACQ1-2027-01-15-0001").exists()
    done = cli(*args)  # applied whole: not read again
    assert [json.loads(x)["rows"] for x in done.stdout.splitlines()] == [0]
