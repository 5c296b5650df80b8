"""Chip cards for simulated terminals: the network's card simulator behind the SDK's ``Chip``.

A real terminal powers up the chip, sends GENERATE AC with the transaction data and gets the
ARQC back; after the issuer answers it passes the ARPC to the chip (EXTERNAL AUTHENTICATE).
The simulated world has no chips, so ``terminals.card_sim.CardSimulator`` computes both with the
issuer's keys in the shared token (SIMULATOR ONLY). ``simulated_reader`` turns it into the
``chip_reader`` a ``terminals.sdk.Terminal`` takes; a ``SimulatedChip`` keeps its PAN private,
as a card keeps its own data, and never shows it in ``repr``.
"""

from __future__ import annotations

from typing import Protocol

from payswitch import cards
from payswitch.v1 import network_pb2
from terminals.sdk import ChipReader


class CardChips(Protocol):
    """What the simulator offers (``terminals.card_sim.CardSimulator`` has exactly this)."""

    async def arqc(self, pan: str, minor_units: int, currency: str) -> network_pb2.EmvData: ...

    async def verify_arpc(
        self, pan: str, emv: network_pb2.EmvData, response_code: int | str, arpc: bytes
    ) -> bool: ...


class SimulatedChip:
    """The chip of one simulated card (``terminals.sdk.Chip``)."""

    def __init__(self, chips: CardChips, pan: str) -> None:
        self._chips = chips
        self._pan = pan

    def __repr__(self) -> str:
        return f"SimulatedChip({cards.mask_pan(self._pan)})"

    async def generate_arqc(self, amount_minor: int, currency: str) -> network_pb2.EmvData:
        return await self._chips.arqc(self._pan, amount_minor, currency)

    async def external_authenticate(
        self, emv: network_pb2.EmvData, response_code: int, arpc: bytes
    ) -> bool:
        return await self._chips.verify_arpc(self._pan, emv, response_code, arpc)


def simulated_reader(chips: CardChips) -> ChipReader:
    """A chip reader over the card simulator: each PAN read powers up that card's chip."""
    return lambda pan: SimulatedChip(chips, pan)
