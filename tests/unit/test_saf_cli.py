"""The one operator tool for the store-and-forward queue: ``payswitch-admin --store URL saf``
works on a real SQLite store with no switch running, and ``python -m switch.cli.saf`` (kept
for scripts) delegates to it, printing the same JSON lines. Each command is a real process."""

import asyncio
import json
import subprocess
import sys
import time

import pytest

from stack.launcher import REPO_ROOT
from switch.domain.saf import SafKind, new_item
from switch.store.sqlite.store import SqliteStore


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )


def _admin(url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return _run("-m", "switch.cli.admin", "--store", url, *argv)


def _saf_cli(url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return _run("-m", "switch.cli.saf", "--store", url, *argv)


@pytest.fixture
def url(tmp_path):
    path = tmp_path / "switch.db"

    async def seed() -> None:
        store = SqliteStore(path, synchronous="normal")
        await store.open()
        now = time.time()
        await store.saf_put(new_item(SafKind.ADVICE, "tx-dead", now).copy(dead=True, attempts=3))
        await store.saf_put(new_item(SafKind.REVERSAL, "tx-live", now))
        await store.close()

    asyncio.run(seed())
    return f"sqlite:///{path}"


def test_store_mode_lists_and_replays_and_the_old_tool_delegates(url):
    dead = _admin(url, "--json", "saf", "list", "--dead")
    assert dead.returncode == 0, dead.stderr
    [line] = dead.stdout.splitlines()
    item = json.loads(line)
    assert (item["id"], item["kind"], item["attempts"], item["dead"]) == (
        "ADVICE:tx-dead",
        "ADVICE",
        3,
        True,
    )
    assert _saf_cli(url, "list", "--dead").stdout == dead.stdout  # the same tool underneath
    live = _admin(url, "saf", "list")  # aligned text without --json
    assert live.returncode == 0 and "REVERSAL:tx-live" in live.stdout and "DEAD" not in live.stdout

    replayed = _saf_cli(url, "replay", "ADVICE:tx-dead")
    assert replayed.returncode == 0, replayed.stderr
    back = json.loads(replayed.stdout)
    assert (back["id"], back["dead"], back["attempts"]) == ("ADVICE:tx-dead", False, 0)
    assert _admin(url, "--json", "saf", "list", "--dead").stdout == ""  # JSON: no line at all
    empty = _admin(url, "saf", "list", "--dead")  # in words for a person
    assert empty.returncode == 0 and empty.stdout == "no dead letters\n"

    again = _admin(url, "saf", "replay", "ADVICE:tx-dead")
    assert again.returncode == 1 and "FAILED_PRECONDITION" in again.stderr
    missing = _saf_cli(url, "replay", "REVERSAL:nope")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    usage = _admin(url, "terminals", "list")
    assert usage.returncode == 2 and "saf only" in usage.stderr
