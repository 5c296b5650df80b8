"""Card brand names across the wire (protobuf ``CardScheme``) and the topology (``Scheme``)."""

from __future__ import annotations

from payswitch.cards import Scheme
from payswitch.v1 import common_pb2

BRAND_OF: dict[int, Scheme] = {
    common_pb2.CardScheme.Value(f"CARD_SCHEME_{s.name}"): s for s in Scheme
}
"""CardScheme enum value -> Scheme; UNSPECIFIED and unknown values are absent."""
