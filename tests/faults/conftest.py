"""Fault-injection tests: a throwaway SoftHSM token for the session (created before
python-pkcs11 loads, exported to the node processes the tests start)."""

from __future__ import annotations

import pytest

from hsm.testing import process_test_config


@pytest.fixture(scope="session", autouse=True)
def hsm_token(tmp_path_factory):
    return process_test_config(tmp_path_factory.mktemp("softhsm"))
