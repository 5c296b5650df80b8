"""One anti-replay rule for every counter a party must accept at most once: a terminal
device's DUKPT transaction counter at the switch (``switch.domain.devices``) and a chip's ATC
at the issuer and in stand-in (``payswitch.atc``).

The window is IPsec's (RFC 4303, section 3.4.3): the highest value accepted so far, and a bit
set over the ``width`` values ending at it (bit ``i`` set: value ``highest - i`` was used; bit
0 is the highest itself). A value above the highest slides the window up and is accepted; a
value inside the window not used yet is accepted once (out-of-order arrival); a value used
already, or older than the window, is refused. With ``width`` at most 63 the bit set fits a
signed 64-bit column (SQLite INTEGER, Cassandra bigint).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_WIDTH = 63


class Replayed(Exception):
    """The value was accepted before."""


class TooOld(Exception):
    """The value is older than the window: whether it was used cannot be told."""


@dataclass(frozen=True, slots=True)
class Window:
    """``highest`` accepted so far; ``bits``: bit i set when ``highest - i`` was used."""

    highest: int
    bits: int


def accept(window: Window | None, value: int, width: int) -> Window:
    """The window after accepting ``value``; raises :class:`Replayed` or :class:`TooOld`.
    ``None``: nothing accepted yet."""
    if not 1 <= width <= MAX_WIDTH:
        raise ValueError(f"replay window width must be 1..{MAX_WIDTH}")
    if window is None:
        return Window(value, 1)
    if value > window.highest:
        shift = value - window.highest
        bits = ((window.bits << shift) | 1) & ((1 << width) - 1) if shift < width else 1
        return Window(value, bits)
    age = window.highest - value
    if age >= width:
        raise TooOld(value)
    if window.bits >> age & 1:
        raise Replayed(value)
    return Window(window.highest, window.bits | 1 << age)
