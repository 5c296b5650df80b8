"""One SoftHSM token per party, each with its own random user PIN and SO PIN.

``payswitch-hsm init`` (and the test fixtures) call :func:`ensure_tokens`: the SoftHSM package
and private conf come from ``scripts/softhsm-init.sh``; then, for every party that has no token
yet, two random PINs are written to owner-only files (``<home>/pins/<party>.pin``,
``<party>.so-pin``, 0600 in a 0700 directory, created exclusively) and the token is initialised
with ``softhsm2-util``. Idempotent: an existing token is left alone, and a token whose PIN file
is lost is reported, not recreated (its keys would be lost with it).

Limit: softhsm2-util takes PINs on its command line only, so they are visible to processes of
the same user in ``/proc/<pid>/cmdline`` for the second it runs; the ceremony runs on the
custodian's machine, not next to the switch.

Tokens must exist before a process first loads ``pkcs11.lib()`` (SoftHSM lists tokens once at
``C_Initialize``); the pool reloads the list once when a token appears later.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hsm.config import (
    CONF_NAME,
    DEFAULT_MODULE,
    HOME_ENV,
    INIT_SCRIPT,
    PINS_DIR,
    pin_path,
    so_pin_path,
    token_label,
)
from hsm.errors import HsmError

_SLOT_LABEL = re.compile(r"^\s*Label:\s+(\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class TokenState:
    party: str
    created: bool

    def line(self) -> str:
        return f"{'new' if self.created else '   '} token {self.party}"


def install(home: Path, module: str = DEFAULT_MODULE) -> None:
    """SoftHSM installed and ``<home>/softhsm2.conf`` written (scripts/softhsm-init.sh)."""
    env = dict(os.environ)
    env.update({HOME_ENV: str(home), "SOFTHSM2_CONF": str(home / CONF_NAME)})
    env["PAYSWITCH_HSM_MODULE"] = module
    proc = subprocess.run(  # noqa: S603 - fixed script path, no shell
        ["/bin/bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise HsmError(f"softhsm-init.sh failed: {proc.stderr.strip()[-400:]}")


def _softhsm(home: Path, module: str, *args: str) -> str:
    env = dict(os.environ, SOFTHSM2_CONF=str(home / CONF_NAME))
    tool = shutil.which("softhsm2-util")
    if tool is None:
        raise HsmError("softhsm2-util not found (package softhsm2)")
    proc = subprocess.run(  # noqa: S603 - SoftHSM's own tool, no shell
        [tool, "--module", module, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise HsmError(f"softhsm2-util {args[0]} failed (exit {proc.returncode})")
    return proc.stdout


def token_labels(home: Path, module: str = DEFAULT_MODULE) -> set[str]:
    """Labels of the tokens initialised under ``home``."""
    return set(_SLOT_LABEL.findall(_softhsm(home, module, "--show-slots")))


def _write_secret(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(value + "\n")


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    fd = os.open(home / ".tokens.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def ensure_tokens(
    home: Path, parties: Iterable[str], module: str = DEFAULT_MODULE
) -> list[TokenState]:
    """A token for every party in ``parties`` (created with fresh random PINs when missing)."""
    home.mkdir(parents=True, exist_ok=True)
    install(home, module)
    pins = home / PINS_DIR
    pins.mkdir(mode=0o700, exist_ok=True)
    os.chmod(pins, 0o700)
    out: list[TokenState] = []
    with _locked(home):
        have = token_labels(home, module)
        for party in dict.fromkeys(parties):
            label = token_label(party)
            user, so = pin_path(home, party), so_pin_path(home, party)
            if label in have:
                if not user.exists():
                    raise HsmError(f"token {label!r} exists but its PIN file {user} is missing")
                out.append(TokenState(party, False))
                continue
            if not so.exists():
                _write_secret(so, secrets.token_hex(16))
            if not user.exists():
                _write_secret(user, secrets.token_hex(16))
            _softhsm(
                home,
                module,
                "--init-token",
                "--free",
                "--label",
                label,
                "--so-pin",
                so.read_text(encoding="ascii").strip(),
                "--pin",
                user.read_text(encoding="ascii").strip(),
            )
            out.append(TokenState(party, True))
    return out
