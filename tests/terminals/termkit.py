"""Card security of the terminal tests, faked with known keys (a plain module: test files and
the conftest import it by name, which a conftest cannot safely be).

Every SDK terminal in these tests gets the same test initial key (the key injection is replaced:
no HSM needed), and :class:`Host` opens requests as the switch would, in software: MAC check,
card data decryption, PIN block decipherment. :class:`FakeCards` stands in for the card
simulator (CVV2s and chips), with an "ARPC" that :func:`fake_arpc` makes.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hsm.dukpt import KeyUsage, Ksn
from payswitch import codes
from payswitch.seclink import canonical_response, mac_input, parse_card_data
from payswitch.v1 import network_pb2, terminal_pb2
from terminals.pinpad import sim_decipher_pin_block
from terminals.secure_element import SecureElement

# The test terminals' initial key (X9.24-3-2017 sample IK and initial key ID): test data only.
TEST_IKID = bytes.fromhex("1234567890123456")
TEST_IK = bytes.fromhex("1273671EA26AC29AFA4D1084127652A1")


async def inject_test_key(se: SecureElement) -> None:
    """What the key injection would load, without an HSM."""
    se._set(TEST_IKID, TEST_IK)


def fake_arpc(emv: network_pb2.EmvData, iso: str) -> bytes:
    """The fake issuer's 'ARPC': bound to the ARQC and the answer, checked by FakeCards."""
    return emv.arqc[:6] + iso.encode()


class FakeCards:
    """Stands in for ``terminals.card_sim.CardSimulator``: CVV2s and chips of test cards."""

    def __init__(self, cvv2s: dict[str, str]) -> None:
        self.cvv2s = cvv2s
        self.atc = 0

    async def cvv2(self, pan: str) -> str:
        return self.cvv2s.get(pan, "123")

    async def arqc(self, pan: str, minor_units: int, currency: str) -> network_pb2.EmvData:
        self.atc += 1
        return network_pb2.EmvData(
            arqc=self.atc.to_bytes(8, "big"),
            atc=self.atc.to_bytes(2, "big"),
            unpredictable_number=bytes(4),
            pan_sequence_number="00",
            amount_authorised=bytes.fromhex(f"{minor_units:012d}"),
            amount_other=bytes(6),
            terminal_country_code=b"\x02\x76",
            tvr=bytes(5),
            transaction_currency_code=b"\x09\x78",
            transaction_date=bytes.fromhex("261121"),
            transaction_type=b"\x00",
            aip=b"\x18\x00",
        )

    async def verify_arpc(
        self, pan: str, emv: network_pb2.EmvData, response_code: int | str, arpc: bytes
    ) -> bool:
        iso = response_code if isinstance(response_code, str) else codes.to_iso(response_code)
        return arpc == fake_arpc(emv, iso)


class Host:
    """The switch's side of the test key, in software (tests only: the real switch does this
    in its HSM). ``open`` returns the card data and the PIN, or None for a bad MAC."""

    def __init__(self) -> None:
        self._se = SecureElement.with_initial_key(TEST_IKID, TEST_IK)

    def seal(self, operation: str, ksn: bytes, response) -> None:
        """The response MAC, as the switch computes it in its HSM (in place)."""
        txn = self._se.transaction_at(Ksn.from_bytes(ksn).counter)
        response.mac = txn.response_mac(canonical_response(operation, response))

    def open(
        self, req: terminal_pb2.AuthorizeRequest
    ) -> tuple[terminal_pb2.CardData, str | None] | None:
        txn = self._se.transaction_at(Ksn.from_bytes(req.encrypted_card.ksn).counter)
        if txn.mac(mac_input(req)) != req.mac:
            return None
        key = txn._working(KeyUsage.DATA_ENCRYPT)
        dec = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).decryptor()
        padded = dec.update(req.encrypted_card.ciphertext) + dec.finalize()
        unpad = padding.PKCS7(128).unpadder()
        card = parse_card_data(unpad.update(padded) + unpad.finalize())
        pin = None
        if req.pin_block:
            pek = txn._working(KeyUsage.PIN_ENCRYPTION)
            pin = sim_decipher_pin_block(pek, req.pin_block, card.pan)
        return card, pin
