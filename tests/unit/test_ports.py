"""Ports for test stacks: outside the kernel's ephemeral range, reserved until released, so a
node started late (or restarted after a kill) finds its port still free."""

from __future__ import annotations

import socket
import subprocess
import sys

from payswitch.world import ports


def _locked_elsewhere(port: int) -> bool:
    """Does another process fail to take ``port``'s lock (as its ``free_ports`` would)?"""
    code = (
        "import fcntl, os, sys\n"
        f"fd = os.open({str(ports.LOCK_DIR / str(port))!r}, os.O_RDWR)\n"
        "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n    sys.exit(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=30, check=False)
    return done.returncode == 3


def test_ports_are_distinct_free_and_outside_the_ephemeral_range() -> None:
    low, high = ports._ephemeral()
    got = ports.free_ports(20)
    try:
        assert len(set(got)) == 20
        assert all(not low <= p <= high and p >= 1024 for p in got)
        for port in got:  # free: a server can bind it now
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
    finally:
        ports.release(got)


def test_a_reserved_port_is_refused_to_another_process_until_released() -> None:
    [port] = ports.free_ports(1)
    try:
        assert _locked_elsewhere(port)
        assert not ports._reserve(port)  # nor picked twice by this process
    finally:
        ports.release([port])
    assert not _locked_elsewhere(port)


def test_a_port_something_listens_on_is_not_reserved() -> None:
    [port] = ports.free_ports(1)
    ports.release([port])
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        assert not ports._reserve(port)
    assert not _locked_elsewhere(port)  # the failed attempt left no lock behind


def test_with_free_ports_moves_every_listen_address() -> None:
    doc = {
        "switch": {"listen": "127.0.0.1:1", "admin_listen": "127.0.0.1:2"},
        "acquirers": [{"id": "a", "listen": "127.0.0.1:3"}],
        "issuers": [{"id": "i", "listen": "127.0.0.1:4"}],
    }
    moved = ports.with_free_ports(doc)
    addresses = [moved["switch"]["listen"], moved["switch"]["admin_listen"]]
    addresses += [moved["acquirers"][0]["listen"], moved["issuers"][0]["listen"]]
    numbers = [int(a.rpartition(":")[2]) for a in addresses]
    ports.release(numbers)
    assert len(set(numbers)) == 4 and min(numbers) >= 1024
    assert doc["switch"]["listen"] == "127.0.0.1:1"  # the original is left alone


def test_none_asked_none_given() -> None:
    assert ports.free_ports(0) == []
