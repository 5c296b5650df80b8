"""The acquirer's PIN translation: from the switch's zone to the issuer's zone, in its HSM.

The switch sends the PIN block (ISO 9564-1 format 4) under the zone PIN key it shares with this
acquirer (``<acq>/zpk.switch``); the issuer expects it under the key it shares with the acquirer
(``<acq>/zpk.<issuer>``). The issuer is the one the scheme's BIN routing will pick
(``Topology.issuer_for_pan``, the same longest-match rule the scheme uses). One HSM job per
request (``hsm.pinblock.translate``: decipher, fresh random fill, re-encipher).

In a real network the scheme sits between two zones and translates again; here the acquirer and
issuer share a ZPK and the scheme passes the block through untouched.

Outcomes (:class:`Translation`): a block, or no block when no issuer owns the PAN (there is no
zone to translate to; the scheme answers 14), or a decline:
- 96 (system malfunction) when the block does not open under the switch ZPK as a valid format 4
  field (wrong key, corrupted or forged block). It is a cryptographic failure between switch and
  acquirer, not evidence of a wrong PIN: answering 55 would count it against the cardholder's
  PIN tries and make the terminal ask for the PIN again, which cannot help.
- 96 as well when the HSM is unavailable or busy (fail closed: never forward an untranslated
  block, never drop the PIN and forward).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hsm import labels as L
from hsm.errors import HsmError
from hsm.pinblock import translate
from hsm.pool import HsmPool, get_key
from network.hsm_node import zpk_label
from payswitch.v1 import common_pb2
from payswitch.world.topology import Topology

SYSTEM_MALFUNCTION = common_pb2.RESPONSE_CODE_SYSTEM_MALFUNCTION


@dataclass(frozen=True, slots=True)
class Translation:
    """``pin_block`` to forward (b"" for none), or ``decline`` (a response code) instead."""

    pin_block: bytes = b""
    decline: common_pb2.ResponseCode | None = None


def _translate_job(session: Any, from_label: str, to_label: str, block: bytes, pan: str) -> bytes:
    """HSM job: the block under ``from_label`` re-enciphered under ``to_label``."""
    return translate(session, get_key(session, from_label), get_key(session, to_label), block, pan)


class PinTranslator:
    """One acquirer's zone crossing, on its own HSM pool."""

    def __init__(self, acquirer_id: str, topology: Topology, pool: HsmPool) -> None:
        self._topology = topology
        self._from = zpk_label(acquirer_id, L.SWITCH)
        self._to = {i.id: zpk_label(acquirer_id, i.id) for i in topology.issuers}
        self._pool = pool

    @staticmethod
    def key_labels(acquirer_id: str, topology: Topology) -> list[str]:
        """The keys an acquirer needs: its ZPK with the switch and one per issuer."""
        return [zpk_label(acquirer_id, L.SWITCH)] + [
            zpk_label(acquirer_id, i.id) for i in topology.issuers
        ]

    async def translate(self, pin_block: bytes, pan: str) -> Translation:
        """The block for the issuer's zone, or a decline; never raises for bad input."""
        issuer = self._topology.issuer_for_pan(pan) if pan else None
        if issuer is None:
            return Translation()
        try:
            block = await self._pool.run(
                _translate_job, self._from, self._to[issuer.id], pin_block, pan
            )
        except HsmError:  # PinBlockError included: a block that does not open
            return Translation(decline=SYSTEM_MALFUNCTION)
        return Translation(pin_block=block)
