"""The requests ``pos pay --key`` keeps (``terminals.kept``): owner-only, never through a
symlink, never overwritten, unreadable content refused by name, stale ones forgotten."""

from __future__ import annotations

import os
import stat
import time

import pytest

from payswitch.v1 import common_pb2, terminal_pb2
from terminals.kept import RETENTION_S, KeptError, KeptRequests

REQUEST = terminal_pb2.AuthorizeRequest(
    idempotency_key="k-1",
    terminal_id="T-0001",
    merchant_id="M-GROCER",
    stan=7,
    amount=common_pb2.Money(minor_units=735, currency="EUR"),
    encrypted_card=terminal_pb2.EncryptedCard(ksn=bytes(12), ciphertext=bytes(32)),
    mac=bytes(16),
)


def test_kept_once_owner_only_and_read_back(tmp_path):
    kept = KeptRequests(tmp_path)
    path = kept.keep("T-0001", "k-1", REQUEST, "411111******1111")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    other = terminal_pb2.AuthorizeRequest()
    other.CopyFrom(REQUEST)
    other.stan = 8
    kept.keep("T-0001", "k-1", other, "411111******1111")  # the first stays
    back = kept.load("T-0001", "k-1")
    assert back is not None and back.request == REQUEST and back.masked_pan == "411111******1111"
    assert kept.load("T-0002", "k-1") is None


def test_a_symlink_or_junk_is_refused_and_a_stale_one_forgotten(tmp_path):
    kept = KeptRequests(tmp_path)
    path = kept.path("T-0001", "k-2")
    path.parent.mkdir(parents=True)
    os.symlink(tmp_path / "elsewhere", path)
    with pytest.raises(KeptError):
        kept.load("T-0001", "k-2")
    kept.keep("T-0001", "k-2", REQUEST, "")  # exclusive create: nothing written through it
    assert not (tmp_path / "elsewhere").exists()
    junk = kept.path("T-0001", "k-3")
    junk.write_text('{"version": 1, "operation": "pay", "request": "not base64!"}')
    with pytest.raises(KeptError, match="not a kept request"):
        kept.load("T-0001", "k-3")
    old = kept.keep("T-0001", "k-4", REQUEST, "")
    then = time.time() - RETENTION_S - 60
    os.utime(old, (then, then))
    assert kept.load("T-0001", "k-4") is None


@pytest.mark.parametrize("terminal, key", [("../x", "k"), ("T-0001", "../../etc"), ("", "k")])
def test_names_that_would_leave_the_folder_are_refused(tmp_path, terminal, key):
    with pytest.raises(KeptError):
        KeptRequests(tmp_path).path(terminal, key)
