"""The network's book of offline trust: every issuer offline key ever published (so a spend
approved under a since-rotated key still verifies) and every revocation with the trust version
that first carried it. ``as_of(v)`` is what a terminal synced at version ``v`` had, which
decides liability: a spend of a device revoked before the terminal's last sync is the
merchant's (its terminal should have refused it), one revoked later is covered by the hold.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

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

    # --- the trust file: public keys and revocations, no secret -------------------------
    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "keys": [[i, v, k.hex()] for (i, v), k in sorted(self.keys.items())],
                "current_keys": dict(sorted(self.current_keys.items())),
                "revoked_keys": [[i, v, at] for (i, v), at in sorted(self.revoked_keys.items())],
                "revoked_devices": dict(sorted(self.revoked_devices.items())),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> TrustBook:
        d = json.loads(text)
        return cls(
            keys={(str(i), int(v)): bytes.fromhex(k) for i, v, k in d["keys"]},
            current_keys={str(i): int(v) for i, v in d["current_keys"].items()},
            revoked_keys={(str(i), int(v)): int(at) for i, v, at in d["revoked_keys"]},
            revoked_devices={str(k): int(v) for k, v in d["revoked_devices"].items()},
            version=int(d["version"]),
        )

    @classmethod
    def load(cls, path: Path) -> TrustBook:
        """The book in ``path``; an empty one when the file does not exist yet."""
        return cls.from_json(path.read_text()) if path.exists() else cls()

    def save(self, path: Path) -> None:
        """Write atomically (temp file, fsync, rename): a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "w") as f:
            f.write(self.to_json() + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
