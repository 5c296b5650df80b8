"""Key custody on a real stack: no child holds a PIN in its environment, each opens only its own
party's token, and a node handed another party's PIN file does not start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hsm.config import hsm_home, pin_path

from .conftest import start_stack


@pytest.fixture(scope="module")
def custody_stack(tmp_path_factory, hsm_token):
    s = start_stack(tmp_path_factory.mktemp("custody-stack"))
    try:
        yield s
    finally:
        s.stop()


def _environ(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_no_pin_in_any_child_environment(custody_stack) -> None:
    pins = sorted((hsm_home() / "pins").glob("*pin"))
    values = {p.read_text().strip() for p in pins}
    assert len(values) >= 14  # switch, KIF, 2 acquirers, 3 issuers: user and SO PINs
    for node_id in custody_stack.node_ids:
        pid = custody_stack.pid(node_id)
        assert pid is not None, node_id
        env = _environ(pid)
        assert not any(v.startswith("PAYSWITCH_HSM_PIN") for v in env), node_id
        blob = "\0".join(env)
        assert not any(value in blob for value in values), node_id


def test_each_key_holder_is_given_its_own_pin_file(custody_stack) -> None:
    topo = custody_stack.topology
    holders = [topo.switch.id, *(a.id for a in topo.acquirers), *(i.id for i in topo.issuers)]
    for node_id in holders:
        argv = _cmdline(custody_stack.pid(node_id))
        party = "switch" if node_id == topo.switch.id else node_id
        assert argv[argv.index("--hsm-pin-file") + 1] == str(pin_path(hsm_home(), party))
    for scheme in topo.schemes:  # schemes hold no keys
        assert "--hsm-pin-file" not in _cmdline(custody_stack.pid(scheme.id))


def test_a_node_given_another_party_pin_does_not_start(custody_stack) -> None:
    """acq-alpha's process with bank-a's PIN file: its own token refuses the login."""
    env = {k: v for k, v in os.environ.items() if k != "PAYSWITCH_HSM_DEV"}
    out = subprocess.run(
        [
            sys.executable, "-m", "stack.node", "--topology", str(custody_stack.topology_path),
            "--id", "acq-alpha", "--hsm-pin-file", str(pin_path(hsm_home(), "bank-a")),
        ],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode != 0
    assert "acq-alpha: HSM unavailable" in out.stderr and "PinIncorrect" in out.stderr
    pin = pin_path(hsm_home(), "bank-a").read_text().strip()
    assert pin not in out.stderr + out.stdout
