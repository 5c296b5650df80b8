"""Shared helpers for the network tests.

Acquirers and issuers open their own HSM at start and refuse to start without their keys, so
every test session gets a throwaway SoftHSM token (exported to the environment before
python-pkcs11 loads, so node processes started by the tests find it too), and every test that
starts nodes first runs the key ceremony for its topology (fixture ``ceremony``, idempotent).
``switch_pin_block`` builds what the switch would send an acquirer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hsm.config import HsmConfig
from hsm.testing import process_test_config
from payswitch.world.topology import Topology, load


@pytest.fixture(scope="session", autouse=True)
def hsm_token(tmp_path_factory: pytest.TempPathFactory) -> HsmConfig:
    return process_test_config(tmp_path_factory.mktemp("softhsm"))


_pools: dict[str, Any] = {}


def _pool_of(party: str) -> Any:
    from hsm.pool import HsmPool
    from hsm.testing import party_config

    if party not in _pools:
        _pools[party] = HsmPool(party_config(party))
    return _pools[party]


def _ceremony(topology: Topology | str | Path) -> None:
    """Every missing key of ``topology``, each party's in its own token (tokens made for new
    parties), shared keys exchanged as key blocks (blocking; from async code call it through
    ``asyncio.to_thread``)."""
    from hsm import keys
    from hsm.config import hsm_home
    from hsm.exchange import ceremony
    from hsm.provision import ensure_tokens

    topo = topology if isinstance(topology, Topology) else load(topology)
    ensure_tokens(hsm_home(), keys.parties(topo))
    ceremony(_pool_of, keys.plan(topo))


def _switch_pin_block(acquirer_id: str, pan: str, pin: str) -> bytes:
    """What the switch sends an acquirer: a format 4 block under ``switch/zpk.<acquirer>``,
    built in the HSM (the key never leaves it). Blocking, like ``ceremony``."""
    from pkcs11 import Mechanism

    from hsm import labels as L
    from hsm.pool import HsmPool, get_key
    from terminals.pinpad import sim_encipher_pin_block

    def job(session: Any) -> bytes:
        key = get_key(session, L.label(L.SWITCH, L.zpk(L.SWITCH, acquirer_id)))
        return sim_encipher_pin_block(
            lambda block: key.encrypt(block, mechanism=Mechanism.AES_ECB), pin, pan
        )

    return HsmPool().run_sync(job)


@pytest.fixture(scope="session")
def ceremony(hsm_token: HsmConfig) -> Callable[[Topology | str | Path], None]:
    """``ceremony(topology)``: make the topology's keys (blocking)."""
    return _ceremony


@pytest.fixture(scope="session")
def switch_pin_block(hsm_token: HsmConfig) -> Callable[[str, str, str], bytes]:
    """``switch_pin_block(acquirer_id, pan, pin)``: a block under ``switch/zpk.<acq>``."""
    return _switch_pin_block
