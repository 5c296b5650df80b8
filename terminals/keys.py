"""The terminal's DUKPT keys: its secure element, and key injection at start (simulator).

A real PIN pad gets its AES-DUKPT initial key (IK) once, in a key-injection facility (KIF): the
KIF's HSM derives the IK from the base derivation key (BDK) the switch's HSM also holds, and
loads it into the device's secure element over a protected channel (TR-34: wrapped under the
device's RSA transport key). After that the device derives a fresh key per transaction and
never sees the BDK.

The simulator plays the KIF with :func:`inject_from_hsm`: the secure element
(``terminals.secure_element.SecureElement``) makes an RSA-2048 transport key pair, the *switch's*
BDK in the shared SoftHSM token derives and wraps the IK for it (``hsm.dukpt.
wrap_initial_key_for_terminal``, inside the HSM), and the secure element unwraps it. The IK never
exists in clear outside the HSM and the secure element, and nothing is written to disk: each
start is a fresh injection (new initial key ID, counter from 1). Calling the switch's BDK from a
terminal process is the one liberty taken: in a real deployment only the KIF may.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from hsm.config import HsmConfig
from hsm.dukpt import wrap_initial_key_for_terminal
from hsm.pool import HsmPool
from terminals.secure_element import SecureElement, new_ikid

# Loads an initial key into a secure element that has none.
KeyInjector = Callable[[SecureElement], Awaitable[None]]


async def inject_from_hsm(se: SecureElement, pool: HsmPool | None = None) -> None:
    """Key injection from the switch's BDK in the environment's SoftHSM token (simulator KIF).

    RSA key generation runs in a worker thread, the wrap on the HSM thread: the event loop
    never blocks. Raises ``hsm.errors.HsmError`` when the token or the BDK is missing.
    """
    pool = pool or HsmPool(HsmConfig.from_env())
    modulus, exponent = await asyncio.to_thread(se.transport_public_key)
    ikid = new_ikid()
    wrapped = await pool.run(wrap_initial_key_for_terminal, ikid, modulus, exponent)
    await asyncio.to_thread(se.load_initial_key, ikid, wrapped)


def loaded(se: SecureElement) -> bool:
    """True when the secure element holds an initial key."""
    return se.ikid is not None
