"""The issuer's cryptographic checks, in its own HSM: PIN, CVV2, ARQC, and the ARPC.

Keys (labels under the issuer's own prefix, made by the key ceremony): ``<iss>/pvk`` (PIN
verification), ``<iss>/cvk`` + ``cvk-a`` (CVV), ``<iss>/imk-ac`` (EMV issuer master key) and
``<iss>/zpk.<acq>`` for every acquirer (the PIN block arrives under the ZPK of the acquirer named
in ``acquirer_id``, ISO 8583 field 32). The node checks them all at start and will not start
without them.

PIN store: at start one HSM job enrols a PIN verification value (``hsm.pinblock.pvv_from_pin``,
AES-CMAC under the PVK) for every card the topology gives a ``pin``; the PVVs stay in memory,
keyed like the cards themselves. The PIN is never kept, logged or stored.

One HSM job per request checks everything the request carries, then the ARQC last so that its
ARPC can carry the answer these checks reach (EMV ARPC method 1 over ARC = the two ASCII digits
of the response code). Decline codes, all decided before the books place any hold:
- 55 incorrect PIN: the block holds another PIN, does not open under the acquirer's ZPK (wrong
  key or tampering: indistinguishable from a wrong PIN on purpose, no format oracle), comes from
  an acquirer the issuer has no ZPK with, or the card has no PIN on file.
- 05 do not honour: CVV2 does not match (CVV2 with service code 000 over PAN and the expiry on
  file), or the ARQC does not verify, is malformed, or covers another amount or currency than
  the request. An invalid ARQC wins over 55 (the card itself is not genuine) and gets no ARPC.
- No PIN block for a card that has a PIN: approved for now. Which entry modes and amounts
  require a PIN (CVM rules) is later work.
- An unavailable or busy HSM raises :class:`hsm.errors.HsmError`; the issuer then answers 96
  without recording anything (an outage is not a decision; a retry is judged again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hsm import labels as L
from hsm.cvv import SERVICE_CODE_CVV2, load_cvk, verify_cvv
from hsm.emv import EmvError, check_arqc, generate_arpc
from hsm.pinblock import PinBlockError, pvv_from_pin, verify_pin
from hsm.pool import HsmPool, get_key
from hsm.stip import card_digest, file_mac, issuer_label
from network.hsm_node import open_pool, zpk_label
from payswitch import codes
from payswitch.atc import AtcState
from payswitch.emvdata import ArqcInput, arqc_input
from payswitch.stipfile import StipCard, StipFile
from payswitch.v1 import common_pb2, network_pb2
from payswitch.world.topology import CardConfig, IssuerConfig, Topology

APPROVED = common_pb2.RESPONSE_CODE_APPROVED
DO_NOT_HONOUR = common_pb2.RESPONSE_CODE_DO_NOT_HONOUR
INCORRECT_PIN = common_pb2.RESPONSE_CODE_INCORRECT_PIN


def arc(response_code: int) -> bytes:
    """Authorisation response code for the ARPC: 155 -> b"55"."""
    return codes.to_iso(response_code).encode("ascii")


@dataclass(frozen=True, slots=True)
class Verdict:
    """Outcome of one request's HSM checks. ``decline`` None: the checks passed.

    ``arpc``: ARPC for ARC = ``decline`` (or 00), when an ARQC verified (``arqc_verified``);
    ``atc``: that ARQC's counter and ``psn`` its card's sequence number (``payswitch.atc``).
    """

    decline: common_pb2.ResponseCode | None = None
    arpc: bytes = b""
    arqc_verified: bool = False
    atc: int = -1
    psn: str = ""


@dataclass(frozen=True, slots=True)
class _Checks:
    """What one request asks the HSM to check. Secret fields stay out of ``repr``."""

    pan: str = field(repr=False)
    expiry: str = field(repr=False)
    pin_block: bytes = field(default=b"", repr=False)
    zpk: str | None = None
    pvv: bytes | None = field(default=None, repr=False)
    cvv2: str = field(default="", repr=False)
    emv_present: bool = False
    arqc: ArqcInput | None = None


def _check_job(session: Any, issuer_id: str, c: _Checks) -> Verdict:
    """HSM job: PIN, then CVV2, then the ARQC (with its ARPC); first failure decides."""
    code: common_pb2.ResponseCode | None = None
    if c.pin_block:
        ok = False
        if c.zpk is not None and c.pvv is not None:
            zpk = get_key(session, c.zpk)
            pvk = get_key(session, L.label(issuer_id, L.PVK))
            try:
                ok = verify_pin(session, zpk, pvk, c.pin_block, c.pan, c.pvv)
            except PinBlockError:
                ok = False
        if not ok:
            code = INCORRECT_PIN
    if code is None and c.cvv2:
        cvk = load_cvk(session, issuer_id)
        if not verify_cvv(session, cvk, c.pan, c.expiry, SERVICE_CODE_CVV2, c.cvv2):
            code = DO_NOT_HONOUR
    if not c.emv_present:
        return Verdict(code)
    if c.arqc is None:
        return Verdict(DO_NOT_HONOUR)
    a = c.arqc
    imk = get_key(session, L.label(issuer_id, L.IMK_AC))
    try:
        data = a.data.to_bytes()
        result = check_arqc(session, imk, c.pan, a.psn, a.atc, data, a.arqc, arc(code or APPROVED))
    except EmvError:
        return Verdict(DO_NOT_HONOUR)
    if not result.valid:
        return Verdict(DO_NOT_HONOUR)
    return Verdict(
        code, result.arpc or b"", arqc_verified=True, atc=int.from_bytes(a.atc), psn=a.psn
    )


def _arpc_job(session: Any, issuer_id: str, pan: str, a: ArqcInput, response_code: int) -> bytes:
    """HSM job: ARPC for an ARQC already verified, with the books' final answer as ARC."""
    imk = get_key(session, L.label(issuer_id, L.IMK_AC))
    return generate_arpc(session, imk, pan, a.psn, a.atc, a.arqc, arc(response_code))


def _enrol_job(
    session: Any, issuer_id: str, cards: tuple[CardConfig, ...]
) -> tuple[dict[str, bytes], dict[str, str]]:
    """HSM job: PVV per PAN for the cards with a PIN (PIN issuance, simulated), and every
    card's digest under the stand-in key (``hsm.stip``: its name in the stand-in file and in
    the books' ATC history)."""
    pvk = get_key(session, L.label(issuer_id, L.PVK))
    pvvs = {c.pan: pvv_from_pin(session, pvk, c.pan, c.pin) for c in cards if c.pin is not None}
    label = issuer_label(issuer_id)
    return pvvs, {c.pan: card_digest(session, label, c.pan) for c in cards}


def _mac_job(session: Any, issuer_id: str, body: bytes) -> bytes:
    return file_mac(session, issuer_label(issuer_id), body)


def key_labels(issuer_id: str, topology: Topology) -> list[str]:
    """Every key the issuer uses: PVK, CVK pair, IMK-AC, and a ZPK per acquirer."""
    own = [L.label(issuer_id, p) for p in (L.PVK, L.CVK, L.CVK_A, L.IMK_AC, L.STIP)]
    return own + [zpk_label(issuer_id, a.id) for a in topology.acquirers]


class IssuerCrypto:
    """One issuer's HSM side: open with :meth:`open`, then :meth:`check` per request."""

    def __init__(
        self,
        config: IssuerConfig,
        topology: Topology,
        pool: HsmPool,
        pvvs: dict[str, bytes],
        digests: dict[str, str],
    ) -> None:
        self._id = config.id
        self._zpks = {a.id: zpk_label(config.id, a.id) for a in topology.acquirers}
        self._pool = pool
        self._pvvs = pvvs
        self._digests = digests

    @classmethod
    async def open(cls, config: IssuerConfig, topology: Topology) -> IssuerCrypto:
        """Log in, check every key (fail closed) and enrol the PVVs, before serving."""
        pool = await open_pool(config.id, key_labels(config.id, topology))
        pvvs, digests = await pool.run(_enrol_job, config.id, config.cards)
        return cls(config, topology, pool, pvvs, digests)

    def atc_key(self, pan: str, psn: str) -> str:
        """The books' ATC history key of a card: its stand-in digest and sequence number."""
        return f"{self._digests[pan]}:{psn}"

    def stip_file(
        self,
        cards: tuple[CardConfig, ...],
        now: float,
        atcs: dict[str, AtcState],
        atc_window: int,
    ) -> StipFile:
        """The stand-in file of ``cards``: digest, status, PVV and ATC history of each (no
        PAN, no PIN); ``atcs``: the books' histories by ``atc_key``."""
        out = {}
        for c in cards:
            digest = self._digests[c.pan]
            mine = {
                key.partition(":")[2]: state
                for key, state in atcs.items()
                if key.partition(":")[0] == digest
            }
            out[digest] = StipCard(c.status, self._pvvs.get(c.pan, b""), mine)
        return StipFile(self._id, now, out, atc_window)

    @property
    def pool(self) -> HsmPool:
        """The issuer's HSM pool (its offline key signs allowances there too)."""
        return self._pool

    async def mac(self, body: bytes) -> bytes:
        """The stand-in file MAC (one HSM job). Raises HsmError when the HSM fails."""
        return await self._pool.run(_mac_job, self._id, body)

    @staticmethod
    def wanted(request: network_pb2.NetworkAuthorization) -> bool:
        """Does the request carry anything for the HSM to check?"""
        return bool(request.pin_block or request.cvv2 or request.HasField("emv"))

    def _checks(self, request: network_pb2.NetworkAuthorization, card: CardConfig) -> _Checks:
        has_emv = request.HasField("emv")
        return _Checks(
            pan=card.pan,
            expiry=card.expiry,
            pin_block=request.pin_block,
            zpk=self._zpks.get(request.acquirer_id),
            pvv=self._pvvs.get(card.pan),
            cvv2=request.cvv2,
            emv_present=has_emv,
            arqc=(
                arqc_input(request.emv, request.amount.minor_units, request.amount.currency)
                if has_emv
                else None
            ),
        )

    async def check(self, request: network_pb2.NetworkAuthorization, card: CardConfig) -> Verdict:
        """All of the request's checks in one HSM job. Raises HsmError when the HSM fails."""
        return await self._pool.run(_check_job, self._id, self._checks(request, card))

    async def arpc(
        self, request: network_pb2.NetworkAuthorization, card: CardConfig, response_code: int
    ) -> bytes:
        """The ARPC for a verified ARQC answered ``response_code`` by the books (a second job,
        only on that decline path). Raises HsmError when the HSM fails."""
        a = arqc_input(request.emv, request.amount.minor_units, request.amount.currency)
        if a is None:
            return b""
        return await self._pool.run(_arpc_job, self._id, card.pan, a, response_code)
