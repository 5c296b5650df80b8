"""Chooses the CardProtector for a switch process: the HSM one in every real run."""

from __future__ import annotations

import os

from switch.cardsec import CardProtector, SoftwareCardProtector


async def build_protector() -> CardProtector:
    # TEMPORARY until hsm/ lands in this session: a software key for local development.
    key = os.environ.get("PAYSWITCH_DEV_SOFTWARE_KEY")
    if key:
        return SoftwareCardProtector(bytes.fromhex(key))
    raise RuntimeError("no HSM card protector configured")
