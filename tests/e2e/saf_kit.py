"""Helpers of the store-and-forward end-to-end tests (test_saf*.py, test_crash_recovery.py):
a stack with a small ``[saf]`` configuration, switching an issuer's faults by rewriting the
topology file and restarting that one process, the operator CLI, and bounded polling."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import tomllib
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from payswitch.v1 import admin_pb2, admin_pb2_grpc, network_pb2, terminal_pb2
from payswitch.world.ports import write_topology
from stack.launcher import REPO_ROOT, Stack

from .clients import Books, RawTerminal, admin_channel, code, node_channels
from .conftest import DEFAULT_TOPOLOGY, injected, start_stack

VISA = "4111111111111111"  # bank-a, account A-1001, through acq-alpha (M-GROCER's first)
EXPIRED = "4000000000000069"  # bank-a answers 54
ISSUER, ACCOUNT, ACQUIRER = "bank-a", "A-1001", "acq-alpha"
HELD = network_pb2.HOLD_STATE_HELD
RELEASED = network_pb2.HOLD_STATE_RELEASED
REVERSED = terminal_pb2.TRANSACTION_STATE_REVERSED
REVERSAL_PENDING = terminal_pb2.TRANSACTION_STATE_REVERSAL_PENDING
PENDING = terminal_pb2.TRANSACTION_STATE_PENDING


class World:
    """One stack with its terminal, the issuers' books and channels to every node."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.channels = node_channels(stack)  # the switch as T-0001 (mTLS when configured)
        self.admin_channel = admin_channel(stack)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.admin_channel)
        self.books = Books({i.id: self.channels[i.id] for i in stack.topology.issuers})
        self.pos: RawTerminal | None = None

    async def open(self) -> World:
        self.pos = RawTerminal(self.channels[self.stack.topology.switch.id], await injected())
        return self

    async def close(self) -> None:
        for ch in (*self.channels.values(), self.admin_channel):
            await ch.close()
        await asyncio.to_thread(self.stack.stop)

    async def set_issuer_faults(self, issuer_id: str, **faults: float) -> None:
        """Rewrite the issuer's fault rates in the topology file and restart only it (its
        books survive: they are files in the run directory)."""
        path = self.stack.topology_path
        doc = tomllib.loads(path.read_text())
        for issuer in doc["issuers"]:
            if issuer["id"] == issuer_id:
                for name in ("error_rate", "timeout_rate", "drop_response_rate"):
                    issuer.pop(name, None)
                issuer.update(faults)
        write_topology(doc, path)
        await asyncio.to_thread(self.stack.restart, issuer_id)

    async def kill(self, node_id: str) -> None:
        await asyncio.to_thread(self.stack.kill, node_id)

    async def start(self, node_id: str) -> None:
        await asyncio.to_thread(self.stack.restart, node_id)

    async def held(self) -> int:
        return (await self.books.account(ISSUER, ACCOUNT)).held

    async def saf(self, *args: str) -> list[dict]:
        """The operator CLI (``payswitch-admin --store``) on the switch's store: works with
        the switch down; one dict per item printed."""
        argv = ["--store", self.stack.store_url, "--json", "saf", *args]
        out = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "switch.cli.admin", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
            check=True,
        )
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    async def admin_items(self, dead: bool) -> list[admin_pb2.SafItem]:
        resp = await self.admin.ListSafItems(
            admin_pb2.ListSafItemsRequest(dead_letters=dead, limit=100), timeout=5.0
        )
        return list(resp.items)

    def metric(self, name: str, kind: str) -> float | None:
        """One gauge sample from the switch's /metrics (blocking: call through to_thread)."""
        url = f"http://{self.stack.metrics_address()}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels.get("kind") == kind:
                    return sample.value
        return None

    async def item_of(self, tx_id: str, dead: bool) -> dict | None:
        listed = await self.saf("list", *(["--dead"] if dead else []))
        return next((i for i in listed if i["transaction_id"] == tx_id), None)


async def saf_world(
    tmp_path_factory, name: str, saf: dict, store: str = "sqlite", **issuer_faults: float
) -> World:
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    doc["saf"] = saf
    for issuer in doc["issuers"]:
        if issuer["id"] == ISSUER:
            issuer.update(issuer_faults)
    stack = await asyncio.to_thread(start_stack, tmp_path_factory.mktemp(name), doc, store=store)
    return await World(stack).open()


async def until(predicate, timeout: float = 20.0, every: float = 0.1):
    """Poll an async predicate until it returns a truthy value (returned) or time is up."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(every)


async def hold_placed(world: World, before: int, amount: int) -> bool:
    """The issuer has placed a hold of ``amount`` (the authorization reached it)."""
    return bool(await until(lambda: _held_is(world, before + amount), timeout=10))


async def _held_is(world: World, value: int) -> bool:
    return await world.held() == value


async def path_answers(world: World) -> bool:
    """Bounded wait until switch -> acq-alpha -> visanet -> bank-a answers again (gRPC
    channels reconnect with their own backoff after a node restart). The probe card is one
    bank-a declines (54, expired), so it places no hold."""
    return bool(await until(lambda: _probe(world), timeout=40, every=0.3))


async def _probe(world: World) -> bool:
    resp = await world.pos.pay(EXPIRED, 100)
    return code(resp) not in ("91", "96")


async def tx_state(world: World, tx_id: str) -> int:
    return (await world.pos.get(tx_id)).state
