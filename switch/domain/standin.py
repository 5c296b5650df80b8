"""Stand-in's shared types: the checks of ``Store.standin_reserve`` (both backends), and
the card verification's input and verdict.

``switch.cardsec.standin`` checks, in the HSM, a ``StandInCard`` as its issuer would and
answers a ``CardVerdict``; ``switch.routing.standin`` decides with it. No key material.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from payswitch.emvdata import ArqcInput
from payswitch.world.topology import BinRange


def check_reserve(card_token: str, currency: str, amount: int, limit: int) -> None:
    if not card_token or not currency:
        raise ValueError("standin_reserve: card_token and currency are required")
    for name, value in (("amount", amount), ("limit", limit)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"standin_reserve: {name} must be an int >= 0 (minor units)")


@dataclass(frozen=True, slots=True)
class StandInCard:
    """What stand-in verifies of one request, as the issuer would (``standin_check``): the
    request's own DUKPT PIN block under its KSN, the card data and the chip's ARQC input.
    Card data and PIN block stay out of ``repr``; the object lives for one HSM job."""

    ksn: bytes
    pan: str = field(repr=False)
    expiry: str = field(repr=False)
    cvv2: str = field(default="", repr=False)
    pin_block: bytes = field(default=b"", repr=False)
    emv_present: bool = False
    arqc: ArqcInput | None = None  # None with emv_present: chip data that cannot be checked


@dataclass(frozen=True, slots=True)
class CardVerdict:
    """Stand-in's verification of a card: ``code`` None when it passed, else the decline
    (ISO 8583 code) and ``reason`` (metric label and log word, never card data)."""

    code: str | None
    reason: str
    issuer: str = ""


# Issuers and the BIN ranges they own (from the topology): which file a card is looked up in.
IssuerBins = tuple[tuple[str, tuple[BinRange, ...]], ...]
