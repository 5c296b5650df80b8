"""``pos`` against the real stack (switch, KIF and network as processes, mTLS): where it finds
its certificates and what it says when it cannot connect (nothing was sent, no retries), and a
second ``pos pay --key K`` that resends the first run's very bytes, so the switch replays its
answer although each run is a new device."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from payswitch.v1 import terminal_pb2
from terminals import pos

pytestmark = pytest.mark.e2e
SQLITE = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
PAN = "4111111111111111"
TOPOLOGY = Path(__file__).resolve().parents[2] / "topology" / "default.toml"


@pytest.fixture(autouse=True)
def no_default_certs(monkeypatch, tmp_path):
    """No certificates but those a test names: not the developer's .run/certs, no env."""
    monkeypatch.setattr(pos, "RUN_CERTS", tmp_path / "no-run" / "certs")
    monkeypatch.delenv("PAYSWITCH_CERTS_DIR", raising=False)


async def run_pos(stack, state: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await pos.run(
        ["--switch", stack.address(stack.topology.switch.id), "--state-dir", str(state), *argv],
        out=out,
        err=err,
        stdin=io.StringIO(""),
    )
    return code, out.getvalue(), err.getvalue()


def _relative(path: Path, start: Path) -> str:
    return os.path.relpath(path, start)


def _line(text: str, label: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(label))


@SQLITE
async def test_plaintext_to_the_tls_port_says_so_once_and_sends_nothing(stack, tmp_path):
    code, _out, err = await run_pos(
        stack, tmp_path, "pay", "12.50", "EUR", "--card", PAN, "--exp", "12/28", "--key", "pt-1"
    )
    assert code == pos.EXIT_UNAVAILABLE
    assert "speaks TLS" in err and "nothing was sent" in err
    assert "outcome unknown" not in err and "retry" not in err
    # Nothing reached the switch: the key is unknown to it.
    certs = ["--certs-dir", str(stack.certs_dir)]
    code, _out, err = await run_pos(stack, tmp_path, *certs, "status", "--key", "pt-1")
    assert code == pos.EXIT_REFUSED and "NOT_FOUND" in err


def _other_run_certs(folder: Path) -> Path:
    """Certificates of another run (other CAs), as payswitch-certs makes them."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "payswitch.certs",
            "--topology",
            str(TOPOLOGY),
            "--dir",
            str(folder),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return folder


@SQLITE
async def test_another_runs_certificates_fail_the_handshake_and_say_so(stack, tmp_path):
    other = await asyncio.to_thread(_other_run_certs, tmp_path / "other")
    code, _out, err = await run_pos(stack, tmp_path, "--certs-dir", str(other), "echo")
    assert code == pos.EXIT_UNAVAILABLE
    assert f"TLS handshake with {stack.address(stack.topology.switch.id)} failed" in err
    assert str(other) in err and "nothing was sent" in err


@SQLITE
async def test_a_relative_certs_dir_is_read_from_the_current_directory(
    stack, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAYSWITCH_CERTS_DIR", ".run/certs")
    code, _out, err = await run_pos(stack, tmp_path, "echo")
    assert code == pos.EXIT_USAGE
    assert str(tmp_path / ".run" / "certs") in err and "PAYSWITCH_CERTS_DIR" in err
    monkeypatch.setenv("PAYSWITCH_CERTS_DIR", _relative(stack.certs_dir, tmp_path))
    code, out, err = await run_pos(stack, tmp_path, "echo")
    assert code == 0, err
    assert str(stack.certs_dir) in out


@SQLITE
async def test_a_second_pay_with_the_same_key_resends_the_same_bytes(stack, tmp_path):
    certs = ["--certs-dir", str(stack.certs_dir)]
    sale = ("pay", "7.35", "EUR", "--card", PAN, "--exp", "12/28", "--key", "twice-1")
    code, first, err = await run_pos(stack, tmp_path, *certs, *sale)
    assert code == 0, err
    code, second, err = await run_pos(stack, tmp_path, *certs, *sale)
    assert code == 0, err
    for label in ("Txn", "Result", "Auth code", "RRN", "STAN"):
        assert _line(first, label) == _line(second, label)
    assert "REPLAYED" in second and "REPLAYED" not in first
    (kept,) = (tmp_path / "prepared" / "T-0001").glob("twice-1.json")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert PAN not in kept.read_text() and "2812" not in kept.read_text()
    other = ("pay", "7.36", "EUR", "--card", PAN, "--exp", "12/28", "--key", "twice-1")
    code, _out, err = await run_pos(stack, tmp_path, *certs, *other)
    assert code == pos.EXIT_REFUSED and "FAILED_PRECONDITION" in err
    # A hostile edit of the kept request (its amount raised to match the sale typed) is
    # resent as it stands, and the switch refuses it: the MAC covers every field.
    doc = json.loads(kept.read_text())
    request = terminal_pb2.AuthorizeRequest.FromString(base64.b64decode(doc["request"]))
    request.amount.minor_units = 736
    doc["request"] = base64.b64encode(request.SerializeToString()).decode()
    kept.write_text(json.dumps(doc))
    code, out, err = await run_pos(stack, tmp_path, *certs, *other)
    assert code == pos.EXIT_REFUSED and "UNAUTHENTICATED" in err and "REPLAYED" not in out
