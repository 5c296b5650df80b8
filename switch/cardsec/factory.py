"""The CardProtector of a switch process: request MACs, card decryption, PIN translation,
tokens, vault sealing and fingerprints, all computed in the HSM (``switch.cardsec.hsm``).

The switch opens its own party's token only (``switch``; ``hsm.config``), with the PIN from the
file it is given (``--hsm-pin-file``) or ``<hsm home>/pins/switch.pin``; never another party's.
A process whose HSM is missing, whose PIN is a well-known default outside development mode, or
whose login is refused does not start: it could not protect card data (fail closed);
``Switch.start`` then checks that every key it will use exists (``check_keys``).
"""

from __future__ import annotations

import asyncio

from hsm.config import HsmConfig
from hsm.errors import HsmError
from hsm.pool import HsmPool
from switch.cardsec.hsm import HsmCardSecurity
from switch.cardsec.protector import CardProtector

SWITCH_PARTY = "switch"


async def build_protector(pin_file: str | None = None) -> CardProtector:
    try:
        # A file read (or a PIN prompt at a terminal): off the event loop.
        config = await asyncio.to_thread(HsmConfig.for_party, SWITCH_PARTY, pin_file=pin_file)
    except HsmError as exc:
        raise RuntimeError(f"switch: HSM refused: {exc}") from None
    config.apply_env()
    pool = HsmPool(config)
    try:
        await pool.start()  # logs in now: a broken token fails the start, not the first payment
    except HsmError as exc:
        raise RuntimeError(f"switch: HSM unavailable: {exc}") from None
    return HsmCardSecurity(pool)
