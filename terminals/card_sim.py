"""SIMULATOR ONLY: what a real card would hold, for tests and the simulated terminals.

A real switch never has issuer keys and never computes a CVV2 or an ARQC: the CVV2 is printed
on the plastic and the ARQC comes out of the chip. The simulated world has no plastic and no
chips, so this module stands in for both, using the *issuer's* keys in the issuer's own token
(opened with the issuer's PIN: the card personalisation bureau's liberty, simulator only):

- :meth:`CardSimulator.cvv2`: the CVV2 "printed on the card" (``hsm.cvv.generate_cvv`` with the
  issuer's CVK over PAN, the expiry on file and service code 000);
- :meth:`CardSimulator.arqc`: the chip's GENERATE AC for an amount: the ICC master key is
  personalised from the issuer's IMK-AC (``hsm.emv.personalise_card``, a session object that
  never leaves the token), the ARQC computed over the CDOL1 data (``card_generate_arqc``), and
  everything returned as the ``EmvData`` message a terminal would send;
- :meth:`CardSimulator.verify_arpc`: the chip's EXTERNAL AUTHENTICATE of the issuer's answer.

Every call is one job on the process's HSM thread (``hsm.pool``). Cards are looked up in the
topology (the issuer that owns the BIN, the card on its file); errors never carry the PAN.
Each simulated chip keeps its application transaction counter (ATC) and increments it per ARQC,
as a card does (the issuer refuses a counter it has seen, ``payswitch.atc``); pass ``atc=`` to
choose one. A chip is one chip however many simulators a process makes (the counters are
shared in the process), and with ``atc_path`` its counter also outlives the process (a JSON
file, as a chip's non-volatile memory: the ``pos`` and ``demo`` commands keep it in their
state directory), so a second run never replays the first one's counters.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar

from hsm import labels as L
from hsm.config import HsmConfig
from hsm.cvv import SERVICE_CODE_CVV2, generate_cvv, load_cvk
from hsm.emv import ArqcData, card_generate_arqc, card_verify_arpc, personalise_card
from hsm.pool import HsmPool, get_key, pool_scratch
from payswitch import codes
from payswitch.emvdata import amount_n12, bcd, currency_n3, to_arqc_data, to_proto
from payswitch.v1 import network_pb2
from payswitch.world.topology import CardConfig, Topology

# Terminal and card defaults for the CDOL1 data: terminal country 276 (Germany), a purchase,
# AIP 1800 (cardholder verification and terminal risk management supported).
TERMINAL_COUNTRY = 276
AIP = b"\x18\x00"
PURCHASE = b"\x00"
_SCRATCH = "terminals.card_sim.icc"


class CardSimError(ValueError):
    """The simulator cannot act for this card (not on any issuer's file, bad input)."""


def _icc_key(session: Any, issuer_id: str, pan: str, psn: str) -> Any:
    """The simulated chip's ICC master key, personalised once per HSM session.

    A session object (gone with the session: no card key persists in the token), cached in the
    pool's scratch space, which is dropped whenever the work session is replaced.
    """
    cache = pool_scratch(session)
    store: dict[tuple[str, str], Any] = {} if cache is None else cache.setdefault(_SCRATCH, {})
    key = store.get((pan, psn))
    if key is None:
        imk = get_key(session, L.label(issuer_id, L.IMK_AC))
        key = personalise_card(session, imk, pan, psn, label="sim/icc/v1", token=False)
        store[(pan, psn)] = key
    return key


def _cvv2_job(session: Any, issuer_id: str, pan: str, expiry: str) -> str:
    return generate_cvv(session, load_cvk(session, issuer_id), pan, expiry, SERVICE_CODE_CVV2)


def _arqc_job(session: Any, issuer_id: str, pan: str, psn: str, data: ArqcData) -> bytes:
    icc = _icc_key(session, issuer_id, pan, psn)
    return card_generate_arqc(session, icc, data.atc, data.to_bytes())


def _verify_arpc_job(
    session: Any,
    issuer_id: str,
    pan: str,
    psn: str,
    atc: bytes,
    arqc: bytes,
    arc: bytes,
    arpc: bytes,
) -> bool:
    icc = _icc_key(session, issuer_id, pan, psn)
    return card_verify_arpc(session, icc, atc, arqc, arc, arpc)


class CardSimulator:
    """The cards of a topology, as their holders would present them. SIMULATOR ONLY.

    ``pool``: an :class:`HsmPool` on a token holding every issuer's keys (a unit test's one
    token); by default each issuer's own token (``HsmConfig.for_party(issuer id)``).
    """

    # (pan, psn) -> the chip's last ATC, shared by every simulator of the process.
    _atc: ClassVar[dict[tuple[str, str], int]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self, topology: Topology, pool: HsmPool | None = None, atc_path: Path | None = None
    ) -> None:
        self._topology = topology
        self._one_pool = pool
        self._pools: dict[str, HsmPool] = {}
        self._atc_path = atc_path

    def _next_atc(self, pan: str, psn: str, atc: int | None) -> int:
        """The counter for this ARQC (the chip's next one unless ``atc`` is given); persisted
        first when the simulator has a file, so a crash never hands a counter out twice."""
        with self._lock:
            stored: dict[str, int] = {}
            if self._atc_path is not None and self._atc_path.exists():
                stored = json.loads(self._atc_path.read_text())
            key = f"{pan}/{psn}"
            last = max(self._atc.get((pan, psn), 0), stored.get(key, 0))
            use = last + 1 if atc is None else atc
            if not 0 <= use <= 0xFFFF:
                raise CardSimError("ATC must fit in 2 bytes")
            self._atc[(pan, psn)] = stored[key] = max(use, last)
            if self._atc_path is not None:
                self._atc_path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self._atc_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(stored))
                tmp.replace(self._atc_path)
            return use

    def _pool(self, issuer_id: str) -> HsmPool:
        if self._one_pool is not None:
            return self._one_pool
        if issuer_id not in self._pools:
            self._pools[issuer_id] = HsmPool(HsmConfig.for_party(issuer_id))
        return self._pools[issuer_id]

    def _card(self, pan: str) -> tuple[str, CardConfig]:
        issuer = self._topology.issuer_for_pan(pan)
        card = None if issuer is None else next((c for c in issuer.cards if c.pan == pan), None)
        if issuer is None or card is None:
            raise CardSimError("no card on any issuer's file for this PAN")
        return issuer.id, card

    async def cvv2(self, pan: str) -> str:
        """The 3-digit CVV2 printed on the card."""
        issuer_id, card = self._card(pan)
        return await self._pool(issuer_id).run(_cvv2_job, issuer_id, pan, card.expiry)

    async def arqc(
        self,
        pan: str,
        minor_units: int,
        currency: str,
        *,
        atc: int | None = None,
        unpredictable_number: bytes | None = None,
        psn: str = "00",
        day: date | None = None,
        tvr: bytes = bytes(5),
    ) -> network_pb2.EmvData:
        """The chip data of an online authorization for ``minor_units`` of ``currency``.

        ``atc``: default the card's next counter (1, 2, ...); ``unpredictable_number``: the
        terminal's 4 random bytes (default fresh); ``day``: transaction date (default today,
        UTC). Returns the ``payswitch.v1.EmvData`` message, ARQC included.
        """
        issuer_id, _card = self._card(pan)
        currency_code = currency_n3(currency)
        if currency_code is None:
            raise CardSimError(f"no ISO 4217 numeric code known for {currency!r}")
        atc = self._next_atc(pan, psn, atc)
        if unpredictable_number is None:
            unpredictable_number = os.urandom(4)
        when = day or datetime.now(UTC).date()
        data = ArqcData(
            amount_authorised=amount_n12(minor_units),
            amount_other=bytes(6),
            terminal_country=bcd(TERMINAL_COUNTRY, 4),
            tvr=tvr,
            currency=currency_code,
            date=bytes.fromhex(f"{when.year % 100:02d}{when.month:02d}{when.day:02d}"),
            txn_type=PURCHASE,
            unpredictable_number=unpredictable_number,
            aip=AIP,
            atc=atc.to_bytes(2, "big"),
        )
        arqc = await self._pool(issuer_id).run(_arqc_job, issuer_id, pan, psn, data)
        return to_proto(data, arqc, psn)

    async def verify_arpc(
        self, pan: str, emv: network_pb2.EmvData, response_code: int | str, arpc: bytes
    ) -> bool:
        """Does the issuer's ``arpc`` authenticate the answer ``response_code`` (enum value or
        two-digit string) to the ARQC in ``emv``? What the chip checks before it accepts it."""
        issuer_id, _card = self._card(pan)
        if len(arpc) != 8:
            return False  # no ARPC (or a malformed one) authenticates nothing
        iso = response_code if isinstance(response_code, str) else codes.to_iso(response_code)
        data = to_arqc_data(emv)
        psn = emv.pan_sequence_number or "00"
        return await self._pool(issuer_id).run(
            _verify_arpc_job, issuer_id, pan, psn, data.atc, emv.arqc, iso.encode("ascii"), arpc
        )
