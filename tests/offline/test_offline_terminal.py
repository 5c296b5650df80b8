"""The terminal's offline mode and the payer device: checks, limits, seen counters, the
journal surviving kill -9 right after "approved", the device durable before it signs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from payswitch.offline import ecdsa
from payswitch.offline.checks import Trust, device_id
from payswitch.offline.formats import Signed, Spend
from terminals.offline import Limits, OfflineDecline, OfflineTerminal
from terminals.offline_device import DeviceRefusal, PayerDevice
from tests.offline import kit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def issuer() -> ecdsa.SoftwareKey:
    return ecdsa.SoftwareKey()


def _terminal(tmp: Path, issuer: ecdsa.SoftwareKey, name: str = "t-1") -> OfflineTerminal:
    t = OfflineTerminal(tmp / f"{name}.journal", name, "m-1")
    t.install(kit.trust(issuer), Limits(floor_limit=5_000, per_card_count=3, per_card_total=9_000))
    return t


def test_approves_journals_and_refuses_a_seen_counter(tmp_path: Path, issuer) -> None:
    t = _terminal(tmp_path, issuer)
    d = kit.device(tmp_path, issuer)
    s = d.spend(1_000, "EUR", "m-1", "t-1", kit.NOW)
    ok = t.approve(d.allowance(), s, kit.NOW)
    assert (ok.counter, ok.amount, ok.seq) == (1, 1_000, 1)
    with pytest.raises(OfflineDecline, match="seen_counter"):
        t.approve(d.allowance(), s, kit.NOW)
    assert d.balance().remaining == 19_000 and t.count() == 1


def test_terminal_rules(tmp_path: Path, issuer) -> None:
    t = _terminal(tmp_path, issuer)
    d = kit.device(tmp_path, issuer, per_tx=9_000)
    with pytest.raises(OfflineDecline, match="wrong_terminal"):
        t.approve(d.allowance(), d.spend(100, "EUR", "m-1", "t-9", kit.NOW), kit.NOW)
    with pytest.raises(OfflineDecline, match="floor_limit"):
        t.approve(d.allowance(), d.spend(5_001, "EUR", "m-1", "t-1", kit.NOW), kit.NOW)
    for _ in range(2):
        t.approve(d.allowance(), d.spend(4_000, "EUR", "m-1", "t-1", kit.NOW), kit.NOW)
    with pytest.raises(OfflineDecline, match="per_card_total"):
        t.approve(d.allowance(), d.spend(1_500, "EUR", "m-1", "t-1", kit.NOW), kit.NOW)
    # A forged spend: right shape, signed by another key.
    a = d.allowance()
    forged = Spend("al-dev", 50, 100, "EUR", "m-1", "t-1", kit.NOW, bytes(32))
    sig = ecdsa.SoftwareKey().sign_digest(forged.digest())
    with pytest.raises(OfflineDecline, match="bad_device_signature"):
        t.approve(a, Signed(forged.canonical(), sig), kit.NOW)
    # An allowance signed by a key the terminal does not hold.
    rogue = kit.device(tmp_path, ecdsa.SoftwareKey(), name="rogue")
    with pytest.raises(OfflineDecline, match="bad_issuer_signature"):
        t.approve(rogue.allowance(), rogue.spend(100, "EUR", "m-1", "t-1", kit.NOW), kit.NOW)


def test_revoked_device_and_key_and_rotation(tmp_path: Path, issuer) -> None:
    t = _terminal(tmp_path, issuer)
    d = kit.device(tmp_path, issuer)
    new = ecdsa.SoftwareKey()
    d2 = kit.device(tmp_path, new, name="d2", version=2)
    # Current (v2) and previous (v1) both accepted.
    both = Trust(keys={("bank-a", 1): issuer.public_key(), ("bank-a", 2): new.public_key()})
    t.install(both, Limits())
    t.approve(d.allowance(), d.spend(100, "EUR", "m-1", "t-1", kit.NOW), kit.NOW)
    t.approve(d2.allowance(), d2.spend(100, "EUR", "m-1", "t-1", kit.NOW), kit.NOW)
    revoked = Trust(
        keys=both.keys,
        revoked_devices=frozenset({device_id(d.signer.public_key())}),
        revoked_keys=frozenset({("bank-a", 2)}),
        version=2,
    )
    t.install(revoked, Limits())
    with pytest.raises(OfflineDecline, match="device_revoked"):
        t.approve(d.allowance(), d.spend(100, "EUR", "m-1", "t-1", kit.NOW), kit.NOW)
    with pytest.raises(OfflineDecline, match="key_revoked"):
        t.approve(d2.allowance(), d2.spend(100, "EUR", "m-1", "t-1", kit.NOW), kit.NOW)


def test_device_limits_and_chain(tmp_path: Path, issuer) -> None:
    d = kit.device(tmp_path, issuer, per_tx=1_000, cumulative=1_500, count=3)
    s1 = Spend.parse(d.spend(1_000, "EUR", "m", "t", kit.NOW).body)
    with pytest.raises(DeviceRefusal, match="per_tx_cap"):
        d.spend(1_001, "EUR", "m", "t", kit.NOW)
    with pytest.raises(DeviceRefusal, match="cumulative_cap"):
        d.spend(501, "EUR", "m", "t", kit.NOW)
    s2 = Spend.parse(d.spend(500, "EUR", "m", "t", kit.NOW).body)
    assert s2.counter == 2 and s2.prev_hash == s1.digest()
    # Durable before signing: a fresh handle on the same file sees the same state.
    again = PayerDevice(tmp_path / "dev.db", d.signer)
    assert again.balance().counter == 2 and again.balance().remaining == 0
    pending = again.resign_pending()
    assert pending is not None and Spend.parse(pending.body) == s2


_CHILD = r"""
import sys
from pathlib import Path
from terminals.offline import OfflineTerminal, trust_from_json, Limits
from payswitch.offline.formats import Signed
t = OfflineTerminal(Path(sys.argv[1]), "t-1", "m-1")
a = Signed(bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]))
s = Signed(bytes.fromhex(sys.argv[4]), bytes.fromhex(sys.argv[5]))
ok = t.approve(a, s, float(sys.argv[6]))
print("approved", ok.seq, flush=True)
sys.stdin.read()  # wait to be killed
"""


def test_kill_minus_nine_after_approved_loses_nothing(tmp_path: Path, issuer) -> None:
    t = _terminal(tmp_path, issuer)
    t.close()
    d = kit.device(tmp_path, issuer)
    a, s = d.allowance(), d.spend(700, "EUR", "m-1", "t-1", kit.NOW)
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path / "t-1.journal"), a.body.hex(),
         a.signature.hex(), s.body.hex(), s.signature.hex(), str(kit.NOW)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("approved"), line
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    after = OfflineTerminal(tmp_path / "t-1.journal", "t-1", "m-1")
    [entry] = after.pending()
    assert entry.spend == s and entry.allowance == a
