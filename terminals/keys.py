"""The terminal's DUKPT keys: its secure element, and key injection at start (simulator).

A real PIN pad gets its AES-DUKPT initial key (IK) once, in a key-injection facility (KIF): the
KIF's HSM derives the IK from its copy of the base derivation key (BDK) the switch's HSM also
holds, and loads it into the device's secure element over a protected channel (TR-34: wrapped
under the device's RSA transport key). After that the device derives a fresh key per transaction
and never sees the BDK.

The simulator goes to the KIF like a device on the injection bench: :func:`inject_from_kif`
runs ``payswitch-kif inject --register`` (``kif.main``) as a process of its own, which assigns a
new device to the terminal in the KIF's register, derives the IK in the KIF's token and wraps
it for the secure element's RSA-2048 public key; the secure element unwraps it. This process
never holds the KIF's PIN or any HSM session, the IK never exists in clear outside the HSM and
the secure element, and nothing is written to disk on the terminal side: each start is a fresh
injection (new initial key ID, counter from 1).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable

from terminals.secure_element import SecureElement

# Loads an initial key into a secure element that has none.
KeyInjector = Callable[[SecureElement], Awaitable[None]]
INJECT_TIMEOUT_S = 120.0


class InjectionError(RuntimeError):
    """The KIF refused or failed; its message (ids only) is carried."""


async def inject_from_kif(
    se: SecureElement,
    terminal_id: str,
    *,
    operator: str = "simulator",
    switch_admin: str | None = None,
    certs_dir: str | None = None,
) -> None:
    """Key injection by the KIF process for a new device registered to ``terminal_id`` (and,
    with ``switch_admin``, registered at the switch too: ``[switch] device_binding =
    "registered"`` serves nothing else).

    RSA key generation runs in a worker thread and the KIF in its own process: the event loop
    never blocks. Raises :class:`InjectionError` when the KIF refuses or fails.
    """
    modulus, exponent = await asyncio.to_thread(se.transport_public_key)
    link = ["--switch-admin", switch_admin] if switch_admin else []
    link += ["--certs-dir", certs_dir] if certs_dir else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kif.main",
        *link,
        "inject",
        "--register",
        "--terminal",
        terminal_id,
        "--operator",
        operator,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    public = json.dumps({"modulus": modulus.hex(), "exponent": exponent.hex()}).encode()
    out, err = await asyncio.wait_for(proc.communicate(public), INJECT_TIMEOUT_S)
    if proc.returncode != 0:
        raise InjectionError(err.decode(errors="replace").strip()[-300:] or "KIF failed")
    answer = json.loads(out)
    ikid, wrapped = bytes.fromhex(answer["ikid"]), bytes.fromhex(answer["wrapped"])
    await asyncio.to_thread(se.load_initial_key, ikid, wrapped)


def injector_for(terminal_id: str) -> KeyInjector:
    """The default injector of terminal ``terminal_id``: the KIF process."""

    async def inject(se: SecureElement) -> None:
        await inject_from_kif(se, terminal_id)

    return inject


def loaded(se: SecureElement) -> bool:
    """True when the secure element holds an initial key."""
    return se.ikid is not None
