"""The issuers' stand-in files as the switch holds them (``payswitch.stipfile``).

Read from ``[standin] files_dir`` at start and every ``refresh_s`` (off the event loop), each
file's MAC checked in the HSM under the switch's copy of its issuer's stand-in key
(``CardProtector.standin_files``); a file that is missing, malformed or does not verify keeps
the issuer's last good one, which then only ages. ``fresh`` gives the files published within
``max_age_s``: stand-in never verifies against an older one (it declines 91 for that issuer).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from hsm.errors import HsmError
from payswitch import stipfile
from payswitch.logs import get as get_logger
from payswitch.stipfile import StipFile
from payswitch.world.topology import StandInConfig
from switch.cardsec.protector import CardProtector
from switch.core import metrics
from switch.domain.standin import CardVerdict, IssuerBins, StandInCard

_log = get_logger("switch.routing.stipfiles")


def _read(files_dir: str, issuer_ids: tuple[str, ...]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for issuer_id in issuer_ids:
        try:
            out[issuer_id] = stipfile.path_of(files_dir, issuer_id).read_bytes()
        except OSError:
            continue  # not published (yet): the issuer has no stand-in until it is
    return out


class StipFiles:
    def __init__(
        self,
        config: StandInConfig,
        issuer_ids: tuple[str, ...],
        protector: CardProtector,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._issuers = issuer_ids
        self._protector = protector
        self._clock = clock
        self._files: dict[str, StipFile] = {}
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> int:
        """Read and verify every issuer's file now; returns how many verified."""
        raws = await asyncio.to_thread(_read, self._config.files_dir, self._issuers)
        verified = await self._protector.standin_files(raws) if raws else {}
        for issuer_id, file in verified.items():
            known = self._files.get(issuer_id)
            if known is None or file.published_at > known.published_at:
                self._files[issuer_id] = file  # never rolled back to an older publication
                metrics.get().standin_file.labels(issuer_id).set(file.published_at)
                _log.info(
                    "stip_file_updated",
                    issuer=issuer_id,
                    published_at=file.published_at,
                    cards=len(file.cards),
                )
        return len(verified)

    def fresh(self) -> dict[str, StipFile]:
        """The files published within ``max_age_s``."""
        oldest = self._clock() - self._config.max_age_s
        return {i: f for i, f in self._files.items() if f.published_at >= oldest}

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._forever())

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self._config.refresh_s)
            try:
                await self.refresh()
            except HsmError as exc:
                _log.warning("stip_refresh_failed", error=type(exc).__name__)
            except Exception:  # never let the refresher die: the files would only age
                _log.exception("stip_refresh_failed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class StandInVerifier:
    """Stand-in's card check: the fresh files and the issuers' BIN ranges, to the HSM job."""

    def __init__(self, files: StipFiles, issuers: IssuerBins, protector: CardProtector) -> None:
        self.files = files
        self._issuers = issuers
        self._protector = protector

    async def __call__(self, card: StandInCard) -> CardVerdict:
        return await self._protector.standin_check(card, self._issuers, self.files.fresh())
