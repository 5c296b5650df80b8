"""The CardProtector of a switch process: request MACs, card decryption, PIN translation,
tokens, vault sealing and fingerprints, all computed in the HSM (``switch.cardsec.hsm``).

The token, module and PIN come from the environment (``hsm.config``). A process whose HSM is
missing or refuses the login does not start: it could not protect card data (fail closed);
``Switch.start`` then checks that every key it will use exists (``check_keys``).
"""

from __future__ import annotations

from hsm.config import HsmConfig
from hsm.errors import HsmError
from hsm.pool import HsmPool
from switch.cardsec.hsm import HsmCardSecurity
from switch.cardsec.protector import CardProtector


async def build_protector() -> CardProtector:
    config = HsmConfig.from_env()
    config.apply_env()
    pool = HsmPool(config)
    try:
        await pool.start()  # logs in now: a broken token fails the start, not the first payment
    except HsmError as exc:
        raise RuntimeError(f"switch: HSM unavailable: {exc}") from None
    return HsmCardSecurity(pool)
