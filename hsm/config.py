"""How every process finds its HSM: PKCS#11 module, SoftHSM conf, its party's token and PIN.

One SoftHSM installation (one conf, one token directory: the *HSM home*, ``.softhsm`` by default
or ``PAYSWITCH_HSM_HOME``) holds one token per party: the switch, each acquirer, each issuer and
the key-injection facility (``kif``). A party's token is labelled with the party id and has its
own user PIN and SO PIN, generated at ``payswitch-hsm init`` and kept in owner-only files
``<home>/pins/<party>.pin`` and ``<party>.so-pin``. A process opens only its own party's token,
so holding one party's PIN gives no use of another party's keys.

Why a PIN file and not the environment: the environment is inherited by every child and readable
in ``/proc/<pid>/environ``; a file path given to one process is not. The PIN is read from the
file named by the process's flag (``--hsm-pin-file``) or ``<home>/pins/<party>.pin``, or
prompted for when stdin is a terminal and no file exists. A file readable by group or others is
refused.

Known default PINs (``1234`` and friends from the SoftHSM how-tos) are refused unless the process
runs in development mode (``PAYSWITCH_HSM_DEV=1``), and then it says so on stderr and in the log
at warning level.

``SOFTHSM2_CONF`` must be in ``os.environ`` before ``pkcs11.lib()`` loads the module: SoftHSM
reads it once at ``C_Initialize``. :meth:`HsmConfig.apply_env` does that.
"""

from __future__ import annotations

import getpass
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from hsm.errors import HsmError

REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
DEFAULT_HOME = REPO_ROOT / ".softhsm"
CONF_NAME = "softhsm2.conf"
PINS_DIR = "pins"
INIT_SCRIPT = REPO_ROOT / "scripts" / "softhsm-init.sh"
DEV_ENV = "PAYSWITCH_HSM_DEV"
HOME_ENV = "PAYSWITCH_HSM_HOME"
KIF = "kif"  # the key-injection facility's party id
# PINs every how-to uses; a token protected by one of these is protected by nothing.
KNOWN_DEFAULT_PINS = frozenset({"1234", "5678", "0000", "123456", "12345678", "87654321"})
TOKEN_LABEL_MAX = 32  # CK_TOKEN_INFO.label is 32 bytes

log = structlog.get_logger("hsm.config")


class PinError(HsmError):
    """The PIN cannot be had safely: no file, a file others can read, or a known default PIN
    outside development mode. The process must not start."""


@dataclass(frozen=True, slots=True)
class HsmConfig:
    """Where one party's token lives. ``pin`` is kept out of ``repr``: it never reaches a log."""

    module: str = DEFAULT_MODULE
    conf: str = str(DEFAULT_HOME / CONF_NAME)
    token: str = "switch"  # noqa: S105 - a token label, not a password
    pin: str = field(default="", repr=False)

    @classmethod
    def for_party(
        cls,
        party: str,
        *,
        pin_file: str | Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> HsmConfig:
        """The token of ``party`` and its PIN (file, else prompt); refuses a default PIN outside
        development mode (:class:`PinError`)."""
        e = os.environ if env is None else env
        home = hsm_home(e)
        path = Path(pin_file) if pin_file else pin_path(home, party)
        pin = read_pin(path, prompt=f"user PIN of HSM token {party!r}: ")
        check_pin(pin, party, dev=dev_mode(e))
        return cls(
            module=e.get("PAYSWITCH_HSM_MODULE") or DEFAULT_MODULE,
            conf=str(home / CONF_NAME),
            token=token_label(party),
            pin=pin,
        )

    def apply_env(self) -> None:
        """Export SOFTHSM2_CONF for the module; call before the first ``pkcs11.lib()``."""
        os.environ["SOFTHSM2_CONF"] = self.conf


def hsm_home(env: Mapping[str, str] | None = None) -> Path:
    """The directory of the SoftHSM conf, the token files and the PIN files."""
    e = os.environ if env is None else env
    return Path(e.get(HOME_ENV) or DEFAULT_HOME)


def token_label(party: str) -> str:
    """The token label of ``party``: the party id itself (operators see it in softhsm2-util)."""
    if not party or len(party.encode()) > TOKEN_LABEL_MAX:
        raise HsmError(f"party id {party!r} cannot be a token label (1..32 bytes)")
    return party


def pin_path(home: Path, party: str) -> Path:
    return home / PINS_DIR / f"{party}.pin"


def so_pin_path(home: Path, party: str) -> Path:
    return home / PINS_DIR / f"{party}.so-pin"


def dev_mode(env: Mapping[str, str] | None = None) -> bool:
    e = os.environ if env is None else env
    return (e.get(DEV_ENV) or "").strip().lower() in ("1", "true", "yes")


def read_pin(path: Path, *, prompt: str | None = None) -> str:
    """The PIN in ``path`` (owner-only file), or typed at a terminal when there is no file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if prompt is not None and sys.stdin is not None and sys.stdin.isatty():
            return getpass.getpass(prompt)
        raise PinError(f"no PIN file {path} (run payswitch-hsm init)") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PinError(f"PIN file {path} is readable by others; chmod 600 it")
    pin = path.read_text(encoding="ascii").strip()
    if not pin:
        raise PinError(f"PIN file {path} is empty")
    return pin


def check_pin(pin: str, party: str, *, dev: bool) -> None:
    """Refuse a well-known PIN unless in development mode, where it is allowed loudly."""
    if pin not in KNOWN_DEFAULT_PINS:
        return
    if not dev:
        raise PinError(
            f"HSM token {party!r} is protected by a well-known default PIN: refusing to start "
            f"(run payswitch-hsm init for random PINs, or set {DEV_ENV}=1 for development)"
        )
    msg = f"DEVELOPMENT MODE: HSM token {party!r} uses a well-known default PIN; not for real keys"
    print(f"WARNING: {msg}", file=sys.stderr, flush=True)
    log.warning("hsm_default_pin", party=party, message=msg)
