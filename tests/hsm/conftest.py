"""Fixtures for HSM tests: one throwaway SoftHSM home per test process.

``hsm_config`` (session): :class:`hsm.config.HsmConfig` of the switch's token in a throwaway HSM
    home (``hsm.testing.process_test_config``: a token per party and the ``unit`` token, PINs in
    files, the home's location exported BEFORE ``pkcs11.lib()`` is first loaded, so child
    processes find the same tokens; no PIN is exported).
``hsm_pool`` (session): a started :class:`hsm.pool.HsmPool` on the ``unit`` token, which stands
    in for every party in these in-process tests (so they never meet the keys an end-to-end
    stack's per-party ceremony made in the same home). Use ``await hsm_pool.run(job, *args)`` in
    async tests or ``hsm_pool.run_sync(job, *args)`` in sync ones; ``job(session, *args)`` runs on
    the process's single PKCS#11 thread. Never call python-pkcs11 from any other thread: SoftHSM
    crashes under concurrent calls.
``hsm_keys`` (session): runs the key ceremony (``hsm.keys.plan`` over ``topology/default.toml``)
    on the ``unit`` token and returns ``{label: KeyInfo}`` (label, type, KCV, status; no key
    material). Labels follow ``<owner>/<purpose>/v<version>``, see ``hsm/labels.py``.

Test-only keys with known values (published vectors) are imported with ``create_object`` inside
a job, as session objects (``CKA_TOKEN`` False), so they vanish with the session.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hsm.config import HsmConfig
from hsm.testing import UNIT, party_config, process_test_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def hsm_config(tmp_path_factory: pytest.TempPathFactory) -> HsmConfig:
    return process_test_config(tmp_path_factory.mktemp("softhsm"))


@pytest.fixture(scope="session")
def hsm_pool(hsm_config: HsmConfig):
    from hsm.pool import HsmPool, _ping

    pool = HsmPool(party_config(UNIT))
    pool.run_sync(_ping)  # log in now: a broken token fails here, not inside a test
    return pool


@pytest.fixture(scope="session")
def hsm_keys(hsm_pool):
    from hsm import keys
    from hsm.exchange import ceremony
    from payswitch.world.topology import load

    # One token stands in for every party in these unit tests (the exchange runs all the same:
    # KEKs under RSA-OAEP, key blocks); tests/hsm/test_custody.py uses the parties' own tokens.
    specs = keys.plan(load(REPO / "topology" / "default.toml"))
    infos = ceremony(lambda _party: hsm_pool, specs)
    return {i.label: i for i in infos}
