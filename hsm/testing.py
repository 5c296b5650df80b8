"""Throwaway SoftHSM homes for tests and demos (never for a real deployment).

A test session gets its own HSM home (conf, token directory, PIN files) in a temporary directory,
with one token per party, as ``payswitch-hsm init`` makes them. The tokens should exist and
``SOFTHSM2_CONF`` point at them before this process first calls ``pkcs11.lib()`` (SoftHSM lists
tokens once; the pool reloads the list when a party's token appears later).
:func:`process_test_config` does both once per process and exports the home (not any PIN), so
spawned child processes (switch, network nodes in end-to-end tests) find their own tokens.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

from hsm.config import HOME_ENV, KIF, HsmConfig
from hsm.provision import ensure_tokens

SWITCH = "switch"
# The default topology's key-holding parties, made up front; a test topology's other parties
# get their tokens from the ceremony (payswitch-hsm keys).
DEFAULT_PARTIES = (SWITCH, KIF, "acq-alpha", "acq-beta", "bank-a", "bank-b", "bank-c")
# A token of no party: in-process unit tests put every party's keys in it (one token standing in
# for all), so they never meet the keys a per-party ceremony made in the parties' own tokens of
# the same HSM home (an end-to-end stack's, earlier or later in the same test process).
UNIT = "unit"

_process_config: HsmConfig | None = None


def make_home(home: Path, parties: Iterable[str] = DEFAULT_PARTIES) -> HsmConfig:
    """Tokens for ``parties`` under ``home``; return the switch's config (PIN read from file)."""
    ensure_tokens(home, parties)
    return HsmConfig.for_party(SWITCH, env={HOME_ENV: str(home)})


def _module_loaded() -> bool:
    pk = sys.modules.get("pkcs11")
    return bool(pk is not None and getattr(pk, "_loaded", None))


def process_test_config(home: Path) -> HsmConfig:
    """Create (once per process) the test HSM home and export its location (never a PIN)."""
    global _process_config
    if _process_config is not None:
        return _process_config
    if _module_loaded():
        raise RuntimeError(
            "pkcs11.lib() was loaded before the test tokens were created; create them first"
        )
    cfg = make_home(home, (*DEFAULT_PARTIES, UNIT))
    os.environ.update({HOME_ENV: str(home), "SOFTHSM2_CONF": cfg.conf})
    _process_config = cfg
    return cfg


def party_config(party: str) -> HsmConfig:
    """The config of ``party``'s token in this process's HSM home (its PIN from its file)."""
    return HsmConfig.for_party(party)
