"""After a session of payments, no test PAN appears in anything the run wrote: the logs of
every node, the switch's store, the issuers' books (WAL files included). The topology file,
the simulator's card database, is the one input that holds them and is left out."""

import asyncio
import tomllib
from pathlib import Path

import pytest

from .clients import code

pytestmark = pytest.mark.e2e


def _cards(topology_path: Path) -> list[dict]:
    doc = tomllib.loads(topology_path.read_text())
    return [c for i in doc["issuers"] for c in i.get("cards", [])]


def _leaks(run_dir: Path, topology_path: Path, pans: list[str]) -> tuple[list[str], list[str]]:
    """(names of files written, 'pan-prefix in file' for each leak)."""
    written = [p for p in run_dir.rglob("*") if p.is_file() and p.resolve() != topology_path]
    leaks = [
        f"{pan[:6]}... in {p.name}"
        for p in written
        for pan in pans
        if pan.encode() in p.read_bytes()
    ]
    return [p.name for p in written], leaks


async def test_no_pan_in_logs_or_stores(stack, pos):
    topology_path = stack.topology_path  # already resolved by Stack
    cards = await asyncio.to_thread(_cards, topology_path)
    for c in cards:
        currency = "JPY" if c["pan"].startswith("35") else "EUR"
        resp = await pos.pay(c["pan"], 100, currency, c["expiry"])
        if code(resp) == "00" and c["pan"].startswith("4111"):
            await pos.capture(resp.transaction_id)
            await pos.refund(resp.transaction_id, 50)
    await pos.pay("4012888888881881", 100)  # not on file: must not leak either
    pans = [c["pan"] for c in cards] + ["4012888888881881"]
    names, leaks = await asyncio.to_thread(_leaks, Path(stack.run_dir), topology_path, pans)
    assert any(n.endswith(".log") for n in names)
    assert any(n.endswith(".db") for n in names)
    assert leaks == []
