"""The switch's book of offline trust: every issuer offline key ever published (so a spend
approved under a since-rotated key still verifies) and every revocation with the trust version
that first carried it. ``as_of(v)`` is what a terminal synced at version ``v`` had, which
decides liability: a spend of a device revoked before the terminal's last sync is the
merchant's (its terminal should have refused it), one revoked later is covered by the hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from payswitch.offline.checks import Trust


@dataclass
class TrustBook:
    keys: dict[tuple[str, int], bytes] = field(default_factory=dict)
    current_keys: dict[str, int] = field(default_factory=dict)  # issuer -> newest version
    revoked_keys: dict[tuple[str, int], int] = field(default_factory=dict)  # -> version
    revoked_devices: dict[str, int] = field(default_factory=dict)  # device id -> version
    version: int = 1

    def publish_keys(self, issuer: str, keys: Mapping[int, bytes]) -> None:
        """An issuer's offline public keys by version (the newest is current)."""
        changed = False
        for v, k in keys.items():
            if self.keys.get((issuer, v)) != k:
                self.keys[(issuer, v)] = k
                changed = True
        if keys:
            self.current_keys[issuer] = max(keys)
        if changed:
            self.version += 1

    def revoke_key(self, issuer: str, version: int) -> int:
        self.version += 1
        self.revoked_keys.setdefault((issuer, version), self.version)
        return self.version

    def revoke_device(self, device: str) -> int:
        self.version += 1
        self.revoked_devices.setdefault(device, self.version)
        return self.version

    def for_terminals(self) -> Trust:
        """What a sync hands a terminal now: each issuer's current and previous key version."""
        keep = {
            (i, v): k for (i, v), k in self.keys.items() if v >= self.current_keys.get(i, v) - 1
        }
        return Trust(
            keys=keep,
            revoked_keys=frozenset(self.revoked_keys),
            revoked_devices=frozenset(self.revoked_devices),
            version=self.version,
        )

    def as_of(self, version: int) -> Trust:
        """Every key (settlement verifies old approvals) and the revocations a terminal synced
        at ``version`` knew."""
        return Trust(
            keys=dict(self.keys),
            revoked_keys=frozenset(k for k, v in self.revoked_keys.items() if v <= version),
            revoked_devices=frozenset(d for d, v in self.revoked_devices.items() if v <= version),
            version=version,
        )
