"""Terminal devices in the store: each DUKPT key ID's terminal and highest counter."""

from __future__ import annotations

import abc

from switch.domain.devices import Advance, Device, DeviceUse


class DeviceStore(abc.ABC):
    """Devices bound to their terminal, with the highest counter each has used."""

    @abc.abstractmethod
    async def advance_device(self, use: DeviceUse, now: float) -> Advance:
        """Apply ``switch.domain.devices.advance`` atomically across every switch process on
        the store: bind a new device to ``use.terminal_id``, or raise the device's counter to
        ``use.counter``; SAME_TRANSMISSION changes nothing. Raises CounterReplay or
        DeviceElsewhere (nothing written). Arguments are validated by ``check_use`` first."""

    @abc.abstractmethod
    async def register_device(self, ikid: str, terminal_id: str, now: float) -> bool:
        """Register a device to its terminal (``switch.domain.devices.registered``): True when
        new, False when it was registered (or bound) to this terminal already; raises
        DeviceElsewhere when it is another terminal's (nothing written)."""

    @abc.abstractmethod
    async def get_device(self, ikid: str) -> Device | None:
        """The device with key ID ``ikid`` (hex), or None."""
