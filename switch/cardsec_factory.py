"""The CardProtector of a switch process: tokens and fingerprints computed in the HSM.

The token, module and PIN come from the environment (``hsm.config``). A process whose HSM is
missing or refuses the login does not start: it could not protect card data (fail closed).
"""

from __future__ import annotations

from hsm.config import HsmConfig
from hsm.pool import HsmPool
from hsm.tokens import HsmCardProtector
from switch.cardsec import CardProtector


async def build_protector() -> CardProtector:
    config = HsmConfig.from_env()
    config.apply_env()
    pool = HsmPool(config)
    await pool.start()  # logs in now: a broken token fails the start, not the first payment
    return HsmCardProtector(pool)
