"""A network node's own HSM access: one ``HsmPool`` per node process, opened at node start.

Acquirers and issuers hold keys (zone PIN keys; the issuer's CVK, IMK and PVK), as in a real
network where each bank has its own HSM: each node opens its own party's token (labelled with
its node id) with its own PIN (``--hsm-pin-file`` or ``<hsm home>/pins/<node id>.pin``), and no
other. Schemes hold none.

Fail closed: a node that needs keys checks at start that the token answers, that it can log
in and that every key it will use exists (one HSM job); otherwise it refuses to start
(:class:`NodeHsmError`), so no node serves traffic it could only decline or, worse, pass on.
Errors name key labels (not secret) and never a PAN, PIN or key value.

All PKCS#11 work runs through ``HsmPool.run`` on the process's single HSM thread, never on the
event loop; each request does its HSM work in one job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from hsm import labels as L
from hsm.config import HsmConfig
from hsm.errors import HsmError
from hsm.pool import HsmPool, missing_keys


class NodeHsmError(RuntimeError):
    """The node's HSM or one of its keys is missing: the node must not start."""


def zpk_label(owner: str, peer: str) -> str:
    """Label of the zone PIN key ``owner`` shares with ``peer`` (same value as the peer's)."""
    return L.label(owner, L.zpk(owner, peer))


_pin_files: dict[str, str] = {}


def set_pin_file(node_id: str, path: str) -> None:
    """The PIN file ``node_id``'s process was given on its command line."""
    _pin_files[node_id] = path


async def open_pool(
    node_id: str, labels: Iterable[str], config: HsmConfig | None = None
) -> HsmPool:
    """Log in to the node's own token and check its keys; raise :class:`NodeHsmError`
    otherwise (also for a well-known default PIN outside development mode)."""
    try:
        config = config or await asyncio.to_thread(
            HsmConfig.for_party, node_id, pin_file=_pin_files.get(node_id)
        )
    except HsmError as exc:
        raise NodeHsmError(f"{node_id}: HSM refused: {exc}") from None
    pool = HsmPool(config)
    wanted = tuple(dict.fromkeys(labels))
    try:
        missing = await pool.run(missing_keys, wanted)
    except HsmError as exc:
        raise NodeHsmError(f"{node_id}: HSM unavailable: {exc}") from None
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise NodeHsmError(
            f"{node_id}: HSM keys missing ({shown}); run the key ceremony "
            "(payswitch-hsm keys --topology FILE)"
        )
    return pool
