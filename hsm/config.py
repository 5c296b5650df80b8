"""How every process finds its HSM: PKCS#11 module, SoftHSM conf, token label and user PIN.

One place, read from the environment, so that the switch, the network nodes, the ceremony CLI
and the tests agree. Defaults match ``scripts/softhsm-init.sh`` (development only: a real
deployment injects ``PAYSWITCH_HSM_PIN`` from its secret store).

``SOFTHSM2_CONF`` must be in ``os.environ`` before ``pkcs11.lib()`` loads the module: SoftHSM
reads it once at ``C_Initialize``. :meth:`HsmConfig.apply_env` does that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
DEFAULT_HOME = REPO_ROOT / ".softhsm"
DEFAULT_CONF = DEFAULT_HOME / "softhsm2.conf"
DEFAULT_LABEL = "payswitch"
DEFAULT_PIN = "1234"  # development default, same as scripts/softhsm-init.sh
INIT_SCRIPT = REPO_ROOT / "scripts" / "softhsm-init.sh"


@dataclass(frozen=True, slots=True)
class HsmConfig:
    """Where the token lives. ``pin`` is excluded from ``repr`` so it never reaches a log."""

    module: str = DEFAULT_MODULE
    conf: str = str(DEFAULT_CONF)
    token: str = DEFAULT_LABEL
    pin: str = field(default=DEFAULT_PIN, repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> HsmConfig:
        e = os.environ if env is None else env
        return cls(
            module=e.get("PAYSWITCH_HSM_MODULE") or DEFAULT_MODULE,
            conf=e.get("SOFTHSM2_CONF") or str(DEFAULT_CONF),
            token=e.get("PAYSWITCH_HSM_TOKEN") or DEFAULT_LABEL,
            pin=e.get("PAYSWITCH_HSM_PIN") or DEFAULT_PIN,
        )

    def apply_env(self) -> None:
        """Export SOFTHSM2_CONF for the module; call before the first ``pkcs11.lib()``."""
        os.environ["SOFTHSM2_CONF"] = self.conf

    def script_env(self, so_pin: str | None = None) -> dict[str, str]:
        """Environment for ``scripts/softhsm-init.sh`` that creates exactly this token."""
        env = dict(os.environ)
        env.update(
            PAYSWITCH_HSM_MODULE=self.module,
            SOFTHSM2_CONF=self.conf,
            PAYSWITCH_HSM_TOKEN=self.token,
            PAYSWITCH_HSM_PIN=self.pin,
        )
        if so_pin is not None:
            env["PAYSWITCH_HSM_SO_PIN"] = so_pin
        return env
