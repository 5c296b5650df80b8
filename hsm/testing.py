"""Throwaway SoftHSM tokens for tests and demos (never for a real deployment).

The token must exist and ``SOFTHSM2_CONF`` must point at it before this process first calls
``pkcs11.lib()``: SoftHSM reads its config once, and a token created after loading stays invisible
until ``reinitialize()`` (which would invalidate every session). :func:`process_test_config` does
both once per process and exports the variables, so spawned child processes (switch, network
nodes in end-to-end tests) find the same token.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hsm.config import INIT_SCRIPT, HsmConfig

TEST_LABEL = "payswitch-test"
TEST_PIN = "98765432"  # throwaway token in a temporary directory
TEST_SO_PIN = "87654321"  # throwaway token in a temporary directory

_process_config: HsmConfig | None = None


def make_token(home: Path, token: str = TEST_LABEL, pin: str = TEST_PIN) -> HsmConfig:
    """Run ``scripts/softhsm-init.sh`` for a token under ``home``; return its config."""
    home.mkdir(parents=True, exist_ok=True)
    cfg = HsmConfig(conf=str(home / "softhsm2.conf"), token=token, pin=pin)
    env = cfg.script_env(so_pin=TEST_SO_PIN)
    env["PAYSWITCH_HSM_HOME"] = str(home)
    subprocess.run(  # noqa: S603 - fixed script path, no shell
        ["/bin/bash", str(INIT_SCRIPT)], env=env, check=True, capture_output=True, timeout=600
    )
    return cfg


def _module_loaded() -> bool:
    pk = sys.modules.get("pkcs11")
    return bool(pk is not None and getattr(pk, "_loaded", None))


def process_test_config(home: Path) -> HsmConfig:
    """Create (once per process) the test token under ``home`` and export its environment."""
    global _process_config
    if _process_config is not None:
        return _process_config
    if _module_loaded():
        raise RuntimeError(
            "pkcs11.lib() was loaded before the test token was created; create the token first"
        )
    cfg = make_token(home)
    os.environ.update(
        SOFTHSM2_CONF=cfg.conf,
        PAYSWITCH_HSM_TOKEN=cfg.token,
        PAYSWITCH_HSM_PIN=cfg.pin,
        PAYSWITCH_HSM_MODULE=cfg.module,
    )
    _process_config = cfg
    return cfg
