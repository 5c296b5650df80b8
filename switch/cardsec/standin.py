"""Stand-in verification in the switch's HSM: the checks the issuer would make, with the keys
it shared with the network for stand-in (``hsm.keys.STANDIN_SHARED``, held by the switch as
``switch/<purpose>.<issuer>``) and the file it publishes (``payswitch.stipfile``).

``check_job``, one HSM job per stood-in request, first failure decides:

==============================================  ====  ==================
no issuer owns the card's BIN                    14    ``unknown_card``
no fresh, verified stand-in file of the issuer   91    ``no_file``
no stand-in key of the issuer                    91    ``no_keys``
the card's digest is not in the file             14    ``unknown_card``
status blocked or lost (the negative file)       62    ``blocked``
the presented expiry has passed (UTC month)       54    ``expired``
chip data that cannot be checked, or an ARQC     05    ``arqc``
that does not verify under ``imk-ac.<issuer>``
a verified ARQC whose counter the issuer's file   59    ``arqc_replay``
shows used, or too far behind (``payswitch.atc``)
a PIN block, and no PVV, or another PIN          55    ``pin``
a CVV2 that does not match under ``cvk.<iss>``   05    ``cvv2``
==============================================  ====  ==================

The codes are the issuer's own for the same failures (``issuer.crypto``: 55 wrong PIN, 05 bad
CVV2 or ARQC, 59 a replayed cryptogram, an invalid ARQC winning over the PIN) except the
negative file, 62 as for the switch's own negative list, and no file or key, 91: stand-in
cannot act for that issuer. The ATC history is the issuer's as of its last file: a cryptogram
replayed within one publication period, or two stand-ins of one cryptogram, are not caught
here (the cumulative limit bounds them).

The PIN is verified from the terminal's own DUKPT PIN block (its KSN's PIN key), so the
translated block of a failover plays no part. The PAN stays inside the job, as in the decrypt
job; the clear PIN field exists only inside ``hsm.pinblock.verify_pin``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hsm import labels as L
from hsm.cvv import SERVICE_CODE_CVV2, verify_cvv
from hsm.dukpt import KeyUsage, Ksn, transaction_key
from hsm.emv import DesKeyPair, EmvError, check_arqc
from hsm.errors import KeyNotFound
from hsm.pinblock import PinBlockError, verify_pin
from hsm.pool import get_key
from hsm.stip import card_digest, check_file_mac, switch_label
from payswitch import codes, stipfile
from payswitch.atc import AtcRefused, AtcState, advance
from payswitch.emvdata import ArqcInput
from payswitch.logs import get as get_logger
from payswitch.stipfile import StipFile
from switch.domain.standin import CardVerdict, IssuerBins, StandInCard

_log = get_logger("switch.cardsec.standin")


def shared_label(purpose: str, issuer_id: str) -> str:
    """The switch's copy of an issuer's stand-in key."""
    return L.label(L.SWITCH, L.shared(purpose, issuer_id))


def files_job(session: Any, raws: Mapping[str, bytes]) -> dict[str, StipFile]:
    """HSM job: the files whose MAC verifies under the switch's copy of their issuer's key."""
    out: dict[str, StipFile] = {}
    for issuer_id, raw in raws.items():
        try:
            body, mac = stipfile.split(raw)
            if not check_file_mac(session, switch_label(issuer_id), body, mac):
                _log.error("stip_file_refused", issuer=issuer_id, reason="mac")
                continue
            out[issuer_id] = stipfile.parse(body, issuer_id)
        except KeyNotFound:
            _log.warning("stip_file_refused", issuer=issuer_id, reason="no_key")
        except stipfile.StipFileError as exc:
            _log.error("stip_file_refused", issuer=issuer_id, reason=str(exc))
    return out


def _issuer_of(pan: str, issuers: IssuerBins) -> str | None:
    """The issuer owning the PAN's BIN: the longest matching range wins, as the scheme routes
    (``Topology.issuer_for_pan``)."""
    best: tuple[int, str] | None = None
    for issuer_id, bins in issuers:
        for r in bins:
            if r.matches(pan) and (best is None or r.width > best[0]):
                best = (r.width, issuer_id)
    return best[1] if best else None


def check_job(
    session: Any, card: StandInCard, issuers: IssuerBins, files: Mapping[str, StipFile]
) -> CardVerdict:
    """HSM job: the stand-in checks of one card (module docstring)."""
    issuer = _issuer_of(card.pan, issuers)
    if issuer is None:
        return CardVerdict(codes.INVALID_CARD_NUMBER, "unknown_card")
    file = files.get(issuer)
    if file is None:
        return CardVerdict(codes.ISSUER_UNAVAILABLE, "no_file", issuer)
    try:
        digest = card_digest(session, switch_label(issuer), card.pan)
    except KeyNotFound:
        return CardVerdict(codes.ISSUER_UNAVAILABLE, "no_keys", issuer)
    entry = file.cards.get(digest)
    if entry is None:
        return CardVerdict(codes.INVALID_CARD_NUMBER, "unknown_card", issuer)
    if entry.status != "active":
        return CardVerdict(codes.RESTRICTED_CARD, "blocked", issuer)
    if card.expiry < datetime.now(UTC).strftime("%y%m"):  # YYMM, checked when decrypted
        return CardVerdict(codes.EXPIRED_CARD, "expired", issuer)
    if card.emv_present and not _arqc_ok(session, card, issuer):
        return CardVerdict(codes.DO_NOT_HONOUR, "arqc", issuer)
    if card.arqc is not None and _replayed(card.arqc, entry.atcs, file.atc_window):
        return CardVerdict(codes.SUSPECTED_FRAUD, "arqc_replay", issuer)
    if card.pin_block and not _pin_ok(session, card, issuer, entry.pvv):
        return CardVerdict(codes.INCORRECT_PIN, "pin", issuer)
    if card.cvv2 and not _cvv2_ok(session, card, issuer):
        return CardVerdict(codes.DO_NOT_HONOUR, "cvv2", issuer)
    return CardVerdict(None, "verified", issuer)


def _arqc_ok(session: Any, card: StandInCard, issuer: str) -> bool:
    a = card.arqc
    if a is None:
        return False
    try:
        imk = get_key(session, shared_label(L.IMK_AC, issuer))
        result = check_arqc(session, imk, card.pan, a.psn, a.atc, a.data.to_bytes(), a.arqc, None)
    except (KeyNotFound, EmvError):
        return False
    return bool(result.valid)


def _replayed(a: ArqcInput, history: Mapping[str, AtcState], window: int) -> bool:
    """Has the issuer (as of its file) seen this counter, or is it too far behind? Stand-in
    does not record it: the issuer's next file carries what the issuer has seen."""
    try:
        advance(history.get(a.psn), int.from_bytes(a.atc, "big"), window)
    except AtcRefused:
        return True
    return False


def _pin_ok(session: Any, card: StandInCard, issuer: str, pvv: bytes) -> bool:
    if not pvv:
        return False  # no PIN on file: as the issuer, 55
    try:
        pvk = get_key(session, shared_label(L.PVK, issuer))
        with transaction_key(session, Ksn.from_bytes(card.ksn)) as tk:
            pek = tk.working_key(KeyUsage.PIN_ENCRYPTION)
            return bool(verify_pin(session, pek, pvk, card.pin_block, card.pan, pvv))
    except (KeyNotFound, PinBlockError):
        return False


def _cvv2_ok(session: Any, card: StandInCard, issuer: str) -> bool:
    try:
        cvk = DesKeyPair(
            get_key(session, shared_label(L.CVK, issuer)),
            get_key(session, shared_label(L.CVK_A, issuer)),
        )
    except KeyNotFound:
        return False
    return bool(verify_cvv(session, cvk, card.pan, card.expiry, SERVICE_CODE_CVV2, card.cvv2))
