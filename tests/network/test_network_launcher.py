"""The launcher: free-port topologies, start-up failures, and the payswitch-stack command."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest

from payswitch.process import connect_address
from payswitch.world import tomlw
from payswitch.world.ports import with_free_ports, write_topology
from payswitch.world.topology import load, parse
from stack.launcher import REPO_ROOT, Stack, StackError, store_url

DEFAULT_TOPOLOGY = REPO_ROOT / "topology" / "default.toml"

SMALL = {
    "acquirers": [{"id": "acq-x", "listen": "x", "schemes": ["visa"]}],
    "schemes": [{"id": "net-x", "listen": "x", "brands": ["visa"]}],
    "issuers": [{"id": "bank-x", "listen": "x", "bins": ["400000-499999"]}],
}


def test_default_topology_moves_to_free_distinct_loopback_ports() -> None:
    doc = with_free_ports(DEFAULT_TOPOLOGY.read_text())
    topo = parse(doc)
    original = load(DEFAULT_TOPOLOGY)
    listens = [topo.switch.listen] + [x.listen for x in (*topo.acquirers, *topo.schemes)]
    listens += [i.listen for i in topo.issuers]
    assert len(set(listens)) == len(listens) == 9
    assert all(addr.startswith("127.0.0.1:") for addr in listens)
    # nothing but the addresses changed
    assert topo.issuers[0].cards == original.issuers[0].cards
    assert topo.acquirers[0].latency == original.acquirers[0].latency


def test_toml_writer_round_trips_the_default_topology() -> None:
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    assert tomllib.loads(tomlw.dumps(doc)) == doc
    odd = {"a b": 'quote " and \\ and \n', "f": 1.5, "t": [True, False], "x": {"y": [1, 2]}}
    assert tomllib.loads(tomlw.dumps(odd)) == odd


def test_store_and_connect_addresses() -> None:
    assert store_url("sqlite", Path("/run/x")) == "sqlite:////run/x/switch.db"
    assert store_url("cassandra://h1/ks", Path("/run/x")) == "cassandra://h1/ks"
    assert connect_address("0.0.0.0:50051") == "127.0.0.1:50051"
    assert connect_address("127.0.0.1:7") == "127.0.0.1:7"


def test_a_node_that_cannot_start_is_named_with_its_log(tmp_path: Path, ceremony) -> None:
    topo = write_topology(with_free_ports(SMALL), tmp_path / "t.toml")
    ceremony(topo)
    port = int(topo.issuer("bank-x").listen.rpartition(":")[2])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        stack = Stack(tmp_path / "t.toml", tmp_path, switch=False, ready_timeout=15)
        with pytest.raises(StackError) as err:
            stack.start()
    message = str(err.value)
    assert "bank-x" in message and str(tmp_path / "bank-x.log") in message
    assert "cannot listen" in message
    assert not any(stack.running(n) for n in stack.node_ids)


def _lines(stream, out: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        out.put(line)
    out.put(None)


def _read_until(lines: queue.Queue, seen: list[str], marker: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            return False
        if line is None:
            return False
        seen.append(line)
        if marker in line:
            return True
    return False


def test_payswitch_stack_command_prefixes_output_and_stops_on_sigint(
    tmp_path: Path, ceremony
) -> None:
    ceremony(write_topology(with_free_ports(SMALL), tmp_path / "t.toml"))
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    argv = [sys.executable, "-m", "stack.launcher", "--topology", str(tmp_path / "t.toml")]
    argv += ["--run-dir", str(tmp_path / "run"), "--store", "sqlite", "--no-switch"]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        assert _read_until(lines, seen, "[stack] all SERVING", 30), "".join(seen)
        for node in ("bank-x", "net-x", "acq-x"):
            assert any(line.startswith(f"[{node}] ") for line in seen), node
        assert (tmp_path / "run" / "bank-x.log").exists()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    _read_until(lines, seen, "never printed", 2)
    assert any('"stopped"' in line and line.startswith("[bank-x] ") for line in seen)


def _port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_nodes_stop_when_the_launcher_is_killed(tmp_path: Path, ceremony) -> None:
    topo = write_topology(with_free_ports(SMALL), tmp_path / "t.toml")
    ceremony(topo)
    ports = [int(x.listen.rpartition(":")[2]) for x in (*topo.issuers, *topo.acquirers)]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    argv = [sys.executable, "-m", "stack.launcher", "--topology", str(tmp_path / "t.toml")]
    argv += ["--run-dir", str(tmp_path / "run"), "--no-switch"]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        assert _read_until(lines, seen, "[stack] all SERVING", 30), "".join(seen)
        assert not any(_port_closed(p) for p in ports)
    finally:
        proc.kill()
        proc.wait(timeout=5)
    deadline = time.monotonic() + 10
    while not all(_port_closed(p) for p in ports):
        assert time.monotonic() < deadline, "orphaned nodes still listening"
        time.sleep(0.1)


def test_a_prestarted_node_is_held_until_started(tmp_path: Path, ceremony) -> None:
    """``prestart`` (a planned restart's process, started during the outage, or beside the
    running one before a kill) serves only once ``start_node`` releases it, as the node it
    replaces, with one start in its log; a kill hits the running process, not its standby."""
    topo = write_topology(with_free_ports(SMALL), tmp_path / "t.toml")
    ceremony(topo)
    port = int(topo.issuers[0].listen.rpartition(":")[2])
    with Stack(tmp_path / "t.toml", tmp_path / "run", switch=False) as stack:
        stack.stop_node("bank-x")
        stack.prestart("bank-x")
        assert stack.pid("bank-x") is not None and not stack.running("bank-x")
        stack.start_node("bank-x")
        assert stack.running("bank-x") and not _port_closed(port)
        assert stack.log_path("bank-x").read_text().count("--- starting") == 2
        first = stack.pid("net-x")
        stack.prestart("net-x")  # a standby beside the running process
        assert stack.running("net-x") and stack.pid("net-x") == first
        stack.kill("net-x")
        assert not stack.running("net-x")
        stack.start_node("net-x")
        assert stack.running("net-x") and stack.pid("net-x") not in (None, first)
        assert stack.log_path("net-x").read_text().count("--- starting") == 2
        stack.prestart("acq-x")  # a standby never used: killed with the stack
        stack.stop_node("acq-x")
        stack.prestart("acq-x")  # held, never released: stopped with the stack
    assert stack.pid("acq-x") is None and stack.unexpected_exits() == {}
