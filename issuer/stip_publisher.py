"""The issuer publishes its stand-in file (``payswitch.stipfile``) for the network's stand-in.

Once before the node serves (so a stack that is up has every issuer's file) and then every
``[standin] publish_interval_s``: the cards' digests, statuses, PVVs and ATC histories (from
the books), MAC'd in the issuer's
HSM under its stand-in key, written atomically into ``[standin] files_dir``. Republishing
keeps ``published_at`` fresh, so the switch can tell a live issuer's file from a stale one,
and carries any change of a card's status. A failed publication is logged and retried at the
next period; the switch stops standing in for this issuer once the file ages past
``max_age_s`` (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from hsm.errors import HsmError
from issuer.bookkeeper import Bookkeeper
from issuer.crypto import IssuerCrypto
from payswitch import stipfile
from payswitch.logs import get as get_logger
from payswitch.world.topology import IssuerConfig, StandInConfig

_log = get_logger("issuer.stip")


class StipPublisher:
    def __init__(
        self,
        config: IssuerConfig,
        standin: StandInConfig,
        crypto: IssuerCrypto,
        books: Bookkeeper,
    ) -> None:
        self._config = config
        self._standin = standin
        self._crypto = crypto
        self._books = books
        self._task: asyncio.Task[None] | None = None

    async def publish_once(self) -> None:
        """Write the file now (HSM job for the MAC, the write off the event loop)."""
        atcs = await self._books.atc_states()
        file = self._crypto.stip_file(
            self._config.cards, time.time(), atcs, self._config.atc_window
        )
        body = file.body()
        mac = await self._crypto.mac(body)
        path = await asyncio.to_thread(
            stipfile.write, self._standin.files_dir, body, mac, self._config.id
        )
        _log.info("stip_published", path=str(path), cards=len(file.cards))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._forever())

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self._standin.publish_interval_s)
            try:
                await self.publish_once()
            except (HsmError, OSError) as exc:
                _log.warning("stip_publish_failed", error=type(exc).__name__)
            except Exception:  # never let the publisher die: the file would only age
                _log.exception("stip_publish_failed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
