"""The offline trust on the wire (``OfflineTrust`` of ``proto/payswitch/v1/offline.proto``),
both ways: the switch builds it, the terminal installs it."""

from __future__ import annotations

from dataclasses import dataclass

from payswitch.offline.checks import Trust
from payswitch.v1 import offline_pb2


@dataclass(frozen=True, slots=True)
class Limits:
    """A terminal's own offline limits, minor units (what a sync hands it with the trust)."""

    floor_limit: int = 10_000
    per_card_count: int = 5
    per_card_total: int = 20_000


def trust_to_proto(trust: Trust, limits: Limits) -> offline_pb2.OfflineTrust:
    return offline_pb2.OfflineTrust(
        version=trust.version,
        keys=[
            offline_pb2.OfflineIssuerKey(issuer=i, version=v, public_key=k)
            for (i, v), k in sorted(trust.keys.items())
        ],
        revoked_keys=[
            offline_pb2.OfflineIssuerKey(issuer=i, version=v) for i, v in sorted(trust.revoked_keys)
        ],
        revoked_devices=sorted(trust.revoked_devices),
        limits=offline_pb2.OfflineLimits(
            floor_limit=limits.floor_limit,
            per_card_count=limits.per_card_count,
            per_card_total=limits.per_card_total,
        ),
    )


def trust_from_proto(msg: offline_pb2.OfflineTrust) -> tuple[Trust, Limits]:
    trust = Trust(
        keys={(k.issuer, k.version): bytes(k.public_key) for k in msg.keys},
        revoked_keys=frozenset((k.issuer, k.version) for k in msg.revoked_keys),
        revoked_devices=frozenset(msg.revoked_devices),
        version=msg.version,
    )
    lim = msg.limits
    return trust, Limits(lim.floor_limit, lim.per_card_count, lim.per_card_total)
