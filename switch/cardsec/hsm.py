"""The switch's ``CardProtector`` on its HSM: one pool job per pipeline step.

``verify_job`` (before the idempotency claim): derive the KSN's DUKPT MAC key, recompute the
request CMAC and compare (``hsm.mac.check_mac``), then the keyed fingerprint of the content
(``hsm.tokens.fingerprint``). Nothing is decrypted: a replayed retry never brings the PAN into
host memory.

``mac_job``: the same check for capture, void, refund and batch close, over their canonical
bytes (``payswitch.seclink.operation_mac_input``), with the fingerprint in the same job; it
replaces the digest job those operations ran before, so they cost no extra HSM trip.
``response_mac_job`` (after the work): the answer's CMAC under the request KSN's response key
(``hsm.mac.sign_response``); with the chain cache that is one derivation step and one working
key.

``open_job`` (after the claim), under the same KSN's key chain (the chain cache of
``hsm.dukpt`` makes the second derivation one step): decrypt ``CardData`` (AES-CBC under the
data key), check it, route by its scheme, translate the PIN block from the DUKPT PIN key to
``switch/zpk.<first acquirer>`` (``hsm.pinblock.translate``), tokenize (HMAC-SHA256,
``hsm.tokens.tokenize_full``) and seal the PAN for the vault (AES-GCM under the current vault
key, additional data = the token, ``hsm.vault``).

The decrypted plaintext buffer is zeroed after parsing; the PAN, expiry and CVV2 then exist as
Python strings only for the forward (the network message carries them), never logged or stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf.message import DecodeError

from hsm import labels as L
from hsm import vault
from hsm.dukpt import BDK_LABEL, KeyUsage, Ksn, cbc_decrypt, transaction_key
from hsm.errors import HsmError, IntegrityError, KeyNotFound
from hsm.mac import check_mac, sign_response
from hsm.pinblock import PinBlockError, translate, zeroize
from hsm.pool import HsmPool, get_key, missing_keys
from hsm.tokens import (
    FINGERPRINT_LABEL,
    TOKEN_LABEL,
    HsmCardProtector,
    fingerprint,
    tokenize_full,
)
from payswitch import cards
from payswitch.seclink import canonical_request, fingerprint_input, parse_card_data
from payswitch.stipfile import StipFile
from switch.cardsec import standin
from switch.cardsec.protector import (
    CardDataRejected,
    OpenedCard,
    RequestRejected,
    Routes,
)
from switch.domain.standin import CardVerdict, IssuerBins, StandInCard

CARD_FIELD = "encrypted_card"
PIN_FIELD = "pin_block"


def zpk_label(acquirer_id: str) -> str:
    """The zone PIN key the switch shares with an acquirer."""
    return L.label(L.SWITCH, L.zpk(L.SWITCH, acquirer_id))


def missing_keys_job(session: Any, labels: tuple[str, ...]) -> list[str]:
    """HSM job: which of ``labels`` have no key, and whether the vault has an active version."""
    missing = missing_keys(session, labels)
    try:
        vault.current_version(session, refresh=True)
    except KeyNotFound:
        missing.append(f"{L.SWITCH}/{L.VAULT}/v<active>")
    return missing


def verify_job(session: Any, fields: Mapping[str, Any], mac: bytes, keyed: bool) -> str:
    """HSM job: request MAC check, then the idempotency fingerprint when ``keyed``."""
    message = canonical_request(**fields)
    try:
        with transaction_key(session, Ksn.from_bytes(fields["ksn"])) as tk:
            check_mac(tk, message, mac)
    except IntegrityError as exc:
        raise RequestRejected(str(exc)) from None
    return fingerprint(session, fingerprint_input(dict(fields))) if keyed else ""


def mac_job(
    session: Any, ksn: bytes, message: bytes, mac: bytes, fingerprint_input: bytes | None
) -> str:
    """HSM job: a follow-up request's MAC, then its idempotency fingerprint when asked."""
    try:
        with transaction_key(session, Ksn.from_bytes(ksn)) as tk:
            check_mac(tk, message, mac)
    except IntegrityError as exc:
        raise RequestRejected(str(exc)) from None
    return fingerprint(session, fingerprint_input) if fingerprint_input is not None else ""


def response_mac_job(session: Any, ksn: bytes, message: bytes) -> bytes:
    """HSM job: the response MAC of an answer (see ``hsm.mac.sign_response``)."""
    with transaction_key(session, Ksn.from_bytes(ksn)) as tk:
        return sign_response(tk, message)


def _card_data(plaintext: bytes) -> tuple[str, str, str]:
    """(pan, expiry, cvv2) from decrypted card data, checked; errors name no value."""
    try:
        card = parse_card_data(plaintext)
    except DecodeError:
        raise CardDataRejected(CARD_FIELD, "does not decrypt to card data") from None
    try:
        cards.check_pan(card.pan, CARD_FIELD)
        cards.check_expiry(card.expiry, CARD_FIELD)
    except cards.CardError as exc:
        raise CardDataRejected(CARD_FIELD, f"card data: {exc}") from None
    cvv2 = card.cvv2
    if cvv2 and not (3 <= len(cvv2) <= 4 and cvv2.isascii() and cvv2.isdigit()):
        raise CardDataRejected(CARD_FIELD, "card data: cvv2 must be 3 or 4 digits")
    return card.pan, card.expiry, cvv2


def open_job(
    session: Any, ksn: bytes, ciphertext: bytes, pin_block: bytes, routes: Routes
) -> OpenedCard:
    """HSM job: decrypt, check, route, translate the PIN, tokenize, seal for the vault."""
    with transaction_key(session, Ksn.from_bytes(ksn)) as tk:
        try:
            plain = cbc_decrypt(tk.working_key(KeyUsage.DATA_ENCRYPT), ciphertext)
        except IntegrityError:
            raise CardDataRejected(CARD_FIELD, "does not decrypt under its KSN") from None
        try:
            pan, expiry, cvv2 = _card_data(plain)
        finally:
            zeroize(plain)
        scheme = cards.scheme_of(pan)
        assert scheme is not None  # check_pan accepted it
        acquirers = tuple(routes.get(scheme, ()))
        block = b""
        if pin_block and acquirers:
            zpk = get_key(session, zpk_label(acquirers[0]))
            pek = tk.working_key(KeyUsage.PIN_ENCRYPTION)
            try:
                block = translate(session, pek, zpk, pin_block, pan)
            except PinBlockError:
                raise CardDataRejected(
                    PIN_FIELD, "does not decipher to an ISO 9564-1 format 4 PIN block"
                ) from None
    token = tokenize_full(session, pan)
    blob = vault.encrypt(session, pan.encode(), token.digest.encode())
    return OpenedCard(
        pan=pan,
        expiry=expiry,
        cvv2=cvv2,
        token=token.digest,
        masked_pan=cards.mask_pan(pan),
        bin=cards.bin_of(pan),
        scheme=scheme,
        acquirer_ids=acquirers,
        pin_block=block,
        vault_blob=blob,
        vault_version=vault.blob_version(blob),
    )


def translate_job(session: Any, ksn: bytes, pin_block: bytes, pan: str, acquirer_id: str) -> bytes:
    """HSM job: the request's DUKPT PIN block to ``switch/zpk.<acquirer_id>`` (failover)."""
    with transaction_key(session, Ksn.from_bytes(ksn)) as tk:
        zpk = get_key(session, zpk_label(acquirer_id))
        pek = tk.working_key(KeyUsage.PIN_ENCRYPTION)
        try:
            return translate(session, pek, zpk, pin_block, pan)
        except PinBlockError:
            raise CardDataRejected(
                PIN_FIELD, "does not decipher to an ISO 9564-1 format 4 PIN block"
            ) from None


def reveal_job(session: Any, token: str, blob: bytes) -> str:
    """HSM job: open a vault blob sealed with the token as additional data."""
    plain = bytearray(vault.decrypt(session, blob, token.encode()))
    try:
        return plain.decode()
    finally:
        zeroize(plain)


class HsmCardSecurity(HsmCardProtector):
    """``switch.cardsec.protector.CardProtector`` on the HSM pool (one job per call)."""

    def __init__(self, pool: HsmPool) -> None:
        super().__init__(pool)

    async def check_keys(self, acquirer_ids: tuple[str, ...]) -> None:
        labels = (BDK_LABEL, TOKEN_LABEL, FINGERPRINT_LABEL, *map(zpk_label, acquirer_ids))
        try:
            missing = await self.pool.run(missing_keys_job, labels)
        except HsmError as exc:
            raise RuntimeError(f"switch: HSM unavailable: {exc}") from None
        if missing:
            raise RuntimeError(
                f"switch: HSM keys missing ({', '.join(missing)}); run the key ceremony "
                "(payswitch-hsm keys --topology FILE)"
            )

    async def verify_request(self, fields: Mapping[str, Any], mac: bytes, keyed: bool) -> str:
        return await self.pool.run(verify_job, dict(fields), bytes(mac), keyed)

    async def verify_mac(
        self, ksn: bytes, message: bytes, mac: bytes, fingerprint_input: bytes | None
    ) -> str:
        fp = None if fingerprint_input is None else bytes(fingerprint_input)
        return await self.pool.run(mac_job, bytes(ksn), bytes(message), bytes(mac), fp)

    async def response_mac(self, ksn: bytes, message: bytes) -> bytes:
        return await self.pool.run(response_mac_job, bytes(ksn), bytes(message))

    async def open_card(
        self, ksn: bytes, ciphertext: bytes, pin_block: bytes, routes: Routes
    ) -> OpenedCard:
        return await self.pool.run(
            open_job, bytes(ksn), bytes(ciphertext), bytes(pin_block), routes
        )

    async def translate_pin(
        self, ksn: bytes, pin_block: bytes, pan: str, acquirer_id: str
    ) -> bytes:
        return await self.pool.run(translate_job, bytes(ksn), bytes(pin_block), pan, acquirer_id)

    async def reveal_pan(self, token: str, vault_blob: bytes) -> str:
        return await self.pool.run(reveal_job, token, bytes(vault_blob))

    async def standin_files(self, raws: Mapping[str, bytes]) -> dict[str, StipFile]:
        return await self.pool.run(standin.files_job, dict(raws))

    async def standin_check(
        self, card: StandInCard, issuers: IssuerBins, files: Mapping[str, StipFile]
    ) -> CardVerdict:
        return await self.pool.run(standin.check_job, card, issuers, dict(files))
