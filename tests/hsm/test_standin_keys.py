"""Stand-in keys and checks on the real token: every issuer's CVK pair, IMK-AC, PVK and
stand-in key are shared with the switch (same KCV under ``switch/<purpose>.<issuer>``); the
stand-in file's MAC made with the issuer's key verifies with the switch's copy and a changed
byte does not; the card digest is the same on both sides; and the switch's stand-in check
(``switch.cardsec.standin.check_job``) gives the issuer's verdicts for CVV2, status, unusable
chip data, unknown cards and a missing file (PIN and ARQC with a terminal and a chip:
tests/e2e/test_standin_verifies.py)."""

from __future__ import annotations

from typing import Any

import pytest

from hsm import labels as L
from hsm import stip
from hsm.cvv import SERVICE_CODE_CVV2, generate_cvv, load_cvk
from hsm.pinblock import pvv_from_pin
from hsm.pool import get_key
from payswitch import stipfile
from payswitch.stipfile import StipCard, StipFile
from payswitch.world.topology import BinRange
from switch.cardsec.standin import check_job, files_job
from switch.domain.standin import StandInCard

ISSUERS = ("bank-a", "bank-b", "bank-c")
PAN = "4111111111111111"
BINS = (("bank-a", (BinRange("400000", "499999"),)),)


@pytest.mark.parametrize("issuer", ISSUERS)
@pytest.mark.parametrize("purpose", [L.CVK, L.CVK_A, L.IMK_AC, L.PVK, L.STIP])
def test_the_issuer_shares_its_stand_in_keys_with_the_switch(hsm_keys, issuer, purpose):
    own = hsm_keys[L.label(issuer, purpose)]
    copy = hsm_keys[L.label(L.SWITCH, L.shared(purpose, issuer))]
    assert own.kcv == copy.kcv and own.capabilities == copy.capabilities


def _signed(session: Any, file: StipFile) -> bytes:
    body = file.body()
    return (
        body
        + b"\n"
        + stip.file_mac(session, stip.issuer_label(file.issuer), body).hex().encode()
        + b"\n"
    )


def _files(session: Any, pvv: bytes, status: str = "active") -> dict[str, bytes]:
    digest = stip.card_digest(session, stip.issuer_label("bank-a"), PAN)
    return {"bank-a": _signed(session, StipFile("bank-a", 1.0, {digest: StipCard(status, pvv)}))}


def test_the_switch_verifies_the_issuers_file_and_refuses_a_changed_one(hsm_pool, hsm_keys):
    def job(session: Any) -> tuple[dict, dict, dict]:
        raw = _files(session, b"")["bank-a"]
        good = files_job(session, {"bank-a": raw})
        body, mac = stipfile.split(raw)
        changed = body.replace(b'"active"', b'"blocked"') + b"\n" + mac.hex().encode() + b"\n"
        other = files_job(session, {"bank-b": raw})  # bank-a's file presented as bank-b's
        return good, files_job(session, {"bank-a": changed}), other

    good, changed, other = hsm_pool.run_sync(job)
    assert list(good) == ["bank-a"] and good["bank-a"].published_at == 1.0
    assert changed == {} and other == {}


def test_the_card_digest_is_the_same_on_both_sides_and_not_a_bare_hash(hsm_pool, hsm_keys):
    import hashlib

    def job(session: Any) -> tuple[str, str]:
        return (
            stip.card_digest(session, stip.issuer_label("bank-a"), PAN),
            stip.card_digest(session, stip.switch_label("bank-a"), PAN),
        )

    issuer_side, switch_side = hsm_pool.run_sync(job)
    assert issuer_side == switch_side and len(issuer_side) == 64
    assert issuer_side != hashlib.sha256(PAN.encode()).hexdigest()


def test_the_switch_checks_cvv2_and_status_as_the_issuer_would(hsm_pool, hsm_keys):
    def job(session: Any) -> list[tuple[str | None, str]]:
        cvv2 = generate_cvv(session, load_cvk(session, "bank-a"), PAN, "2812", SERVICE_CODE_CVV2)
        pvv = pvv_from_pin(session, get_key(session, L.label("bank-a", L.PVK)), PAN, "1234")
        files = {
            "bank-a": stipfile.parse(stipfile.split(_files(session, pvv)["bank-a"])[0], "bank-a")
        }
        blocked = {
            "bank-a": stipfile.parse(
                stipfile.split(_files(session, pvv, "blocked")["bank-a"])[0], "bank-a"
            )
        }
        wrong = f"{(int(cvv2) + 1) % 1000:03d}"
        ksn = bytes(12)
        out = []
        for card, f in (
            (StandInCard(ksn, PAN, "2812", cvv2=cvv2), files),
            (StandInCard(ksn, PAN, "2812", cvv2=wrong), files),
            (StandInCard(ksn, PAN, "2812", cvv2=cvv2), blocked),
            (StandInCard(ksn, PAN, "2812", emv_present=True), files),  # chip data unreadable
            (StandInCard(ksn, "4012888888881881", "2812"), files),
            (StandInCard(ksn, "5555555555554444", "2906"), files),  # no issuer in BINS
            (StandInCard(ksn, PAN, "2812"), {}),  # no fresh file
        ):
            v = check_job(session, card, BINS, f)
            out.append((v.code, v.reason))
        return out

    assert hsm_pool.run_sync(job) == [
        (None, "verified"),
        ("05", "cvv2"),
        ("62", "blocked"),
        ("05", "arqc"),
        ("14", "unknown_card"),
        ("14", "unknown_card"),
        ("91", "no_file"),
    ]


def test_the_longest_bin_range_names_the_issuer_as_the_scheme_routes(hsm_pool, hsm_keys):
    """bank-b's narrow range inside bank-a's wide one: the card is bank-b's, and bank-b has
    published no file here, so stand-in cannot act (91), never bank-a's file."""
    bins = (
        ("bank-a", (BinRange("400000", "499999"),)),
        ("bank-b", (BinRange("41111111", "41111111"),)),
    )

    def job(session: Any):
        files = {
            "bank-a": stipfile.parse(stipfile.split(_files(session, b"")["bank-a"])[0], "bank-a")
        }
        return check_job(session, StandInCard(bytes(12), PAN, "2812"), bins, files)

    verdict = hsm_pool.run_sync(job)
    assert (verdict.code, verdict.reason, verdict.issuer) == ("91", "no_file", "bank-b")
