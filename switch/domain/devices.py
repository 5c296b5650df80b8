"""Terminal devices: the key each terminal's secure element holds, and its counter.

A device is an AES-DUKPT initial key ID (the first 8 bytes of every KSN). The first request
whose MAC verifies under a device's key binds the device to the terminal that sent it; from then
on every request of that device must come from that terminal and carry a transaction counter it
has not used. The store keeps the device's highest counter and a window of the 63 counters
below it (an anti-replay window in the manner of IPsec's, RFC 4303 section 3.4.3): a counter
above the highest is accepted and slides the window; one inside the window is accepted once
(requests of one terminal may reach the switch out of order); one used already, or older than
the window, is refused. A request re-MACed under a used counter (a replay, even with a new STAN)
or sent by another terminal is refused before anything is recorded. A resend of the device's
latest transmission (same counter, local date and STAN) is let through to the
duplicate-transmission check, which answers it 94 as before.

Registration. The key-injection facility registers each device it injects to its terminal;
the registration reaches the store through ``AdminService.RegisterDevice`` as a device with
no counter used yet (counter 0, empty window). Under ``[switch] device_binding = "registered"``
(``DeviceUse.registered_only``) a device not registered is refused (:class:`DeviceUnregistered`),
nothing recorded, instead of being bound at first use; a registered one is used as above, and
only by the terminal it was registered to.

The other money-moving requests (capture, void, refund, batch close) carry a KSN of their own
and use the device the same way (``switch.operations.common.use_device``); a resend of their
latest transmission is refused like any used counter, except a refund's, whose STAN and local
date lead to the same 94.

Exhaustion: a device's counter runs out at ``hsm.dukpt.LAST_COUNTER`` (0xFFFF0000, the last
32-bit value with at most 16 one-bits). From :data:`REKEY_AT` on, every answer tells the
terminal to load a new initial key (``rekey_required``); 27,896 valid counters are left there,
days of a busy lane. A KSN past the last counter is refused (INVALID_ARGUMENT naming it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from payswitch.replay_window import Replayed, TooOld, Window, accept
from switch.domain.errors import StoreError


@dataclass(frozen=True, slots=True)
class DeviceUse:
    """One request's use of a device: its key ID (hex), terminal, counter and transmission."""

    ikid: str
    terminal_id: str
    counter: int
    local_date: str
    stan: int
    registered_only: bool = False  # refuse a device nobody registered (no first-use binding)


REKEY_AT = 0xFFE00000  # counters from here on: the answer asks the terminal to re-key


def needs_rekey(counter: int) -> bool:
    """Is this counter close enough to exhaustion that the terminal must re-key soon?"""
    return counter >= REKEY_AT


WINDOW = 63  # counters remembered, the highest included (``payswitch.replay_window``)


@dataclass(frozen=True, slots=True)
class Device:
    """A device as the store keeps it: bound to one terminal, its highest counter so far with
    the transmission that used it, and ``window``: bit i set when counter ``counter - i`` has
    been used (bit 0, the highest itself, is always set)."""

    ikid: str
    terminal_id: str
    counter: int
    window: int
    local_date: str
    stan: int
    updated_at: float


class Advance(enum.Enum):
    ADVANCED = "advanced"  # a new counter (or a new device): the request may go on
    SAME_TRANSMISSION = "same"  # the device's latest transmission sent again: 94 follows


class DeviceRefused(StoreError):
    """The request must be refused: nothing was recorded."""

    field = "encrypted_card.ksn"


class CounterReplay(DeviceRefused):
    """The KSN's counter is not above the device's highest: a replayed or stale request."""

    def __init__(self, ikid: str, counter: int, highest: int) -> None:
        super().__init__(
            f"counter {counter} of device {ikid} already used (highest {highest}): "
            "a new request needs a new KSN"
        )


class DeviceUnregistered(DeviceRefused):
    """Strict binding: the device was never registered by the key-injection facility."""

    def __init__(self, ikid: str) -> None:
        super().__init__(f"device {ikid} is not registered to any terminal")


def registered(ikid: str, terminal_id: str, now: float) -> Device:
    """A device as registration leaves it: bound to ``terminal_id``, no counter used yet."""
    check_use(DeviceUse(ikid, terminal_id, 1, "", 0))
    return Device(ikid, terminal_id, 0, 0, "", 0, now)


class DeviceElsewhere(DeviceRefused):
    """The device belongs to another terminal."""

    def __init__(self, ikid: str) -> None:
        super().__init__(f"device {ikid} belongs to another terminal")


def check_use(use: DeviceUse) -> None:
    """Validate a device use before any backend runs it (both backends share this)."""
    if len(use.ikid) != 16 or any(c not in "0123456789abcdef" for c in use.ikid):
        raise ValueError("device: ikid must be 16 lower-case hex digits")
    if not use.terminal_id:
        raise ValueError("device: terminal_id is required")
    if not isinstance(use.counter, int) or isinstance(use.counter, bool):
        raise ValueError("device: counter must be an int")
    if not 0 < use.counter < 2**32:
        raise ValueError("device: counter out of range")


@dataclass(frozen=True, slots=True)
class Step:
    """What a use does: ``outcome``, and the device's highest counter, window and latest
    transmission after it (to write when ``outcome`` is ADVANCED)."""

    outcome: Advance
    counter: int
    window: int
    local_date: str
    stan: int


def advance(current: Device | None, use: DeviceUse) -> Step:
    """What ``use`` does to a device in state ``current``: the rule both backends apply
    atomically. Raises DeviceElsewhere or CounterReplay to refuse it."""
    c = use.counter
    if current is None and use.registered_only:
        raise DeviceUnregistered(use.ikid)
    if current is None:
        return Step(Advance.ADVANCED, c, 1, use.local_date, use.stan)
    if current.terminal_id != use.terminal_id:
        raise DeviceElsewhere(use.ikid)
    highest, window = current.counter, current.window
    if (c, use.local_date, use.stan) == (highest, current.local_date, current.stan):
        return Step(Advance.SAME_TRANSMISSION, highest, window, use.local_date, use.stan)
    try:
        after = accept(Window(highest, window), c, WINDOW)
    except (Replayed, TooOld):
        raise CounterReplay(use.ikid, c, highest) from None
    if c > highest:
        return Step(Advance.ADVANCED, c, after.bits, use.local_date, use.stan)
    return Step(Advance.ADVANCED, highest, after.bits, current.local_date, current.stan)
