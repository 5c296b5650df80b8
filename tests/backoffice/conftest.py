"""Fixtures of the back office's process tests: a throwaway HSM home for the network nodes."""

from __future__ import annotations

import pytest

from hsm.testing import process_test_config


@pytest.fixture(scope="session", autouse=True)
def hsm_token(tmp_path_factory):
    """A throwaway HSM home (one token per party, PIN files), its location exported to the
    environment the nodes inherit (no PIN is)."""
    return process_test_config(tmp_path_factory.mktemp("softhsm"))
