"""Card security end to end: encrypted card data, request MAC, PIN, CVV2 and chip, every node a
real process with its own HSM keys in the test token.

CVV2s and chip cryptograms of the test cards come from the card simulator
(``terminals.card_sim``), as they would come from the plastic and the chip.
"""

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from hsm import vault
from hsm.pool import HsmPool
from payswitch.v1 import terminal_pb2
from switch.store import open_store
from terminals.card_sim import CardSimulator

from .clients import code

pytestmark = pytest.mark.e2e

VISA = "4111111111111111"  # bank-a, A-1001, PIN 1234 on file, expiry 2812
PIN = "1234"


@pytest.fixture(scope="module")
def chips(stack) -> CardSimulator:
    return CardSimulator(stack.topology)


async def _not_recorded(pos, req) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as lookup:
        await pos.stub.GetTransaction(pos.lookup_request(key=req.idempotency_key), timeout=2.0)
    assert lookup.value.code() == grpc.StatusCode.NOT_FOUND


async def test_clear_card_is_refused_with_the_field_named(pos, books):
    req = pos.auth_request(VISA, 100)
    req.card.pan = VISA
    req.card.expiry = "2812"
    before = await books.account("bank-a", "A-1001")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pos.authorize(req)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad = error_details_pb2.BadRequest()
    assert rpc_status.from_call(err.value).details[0].Unpack(bad)
    violation = bad.field_violations[0]
    assert violation.field == "card"
    assert violation.description == "clear card data is not accepted; send encrypted_card"
    assert VISA not in err.value.details()
    assert (await books.account("bank-a", "A-1001")) == before
    await _not_recorded(pos, req)


@pytest.mark.parametrize("what", ["ciphertext byte", "amount", "pin block", "mac"])
async def test_a_request_altered_after_its_mac_is_refused_and_changes_nothing(pos, books, what):
    req = pos.auth_request(VISA, 700, pin=PIN)
    if what == "ciphertext byte":
        ct = bytearray(req.encrypted_card.ciphertext)
        ct[5] ^= 0x01
        req.encrypted_card.ciphertext = bytes(ct)
    elif what == "amount":
        req.amount.minor_units = 70000
    elif what == "pin block":
        block = bytearray(req.pin_block)
        block[0] ^= 0x80
        req.pin_block = bytes(block)
    else:
        req.mac = bytes(16)
    before = await books.account("bank-a", "A-1001")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pos.authorize(req)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "MAC" in err.value.details() and VISA not in err.value.details()
    assert (await books.account("bank-a", "A-1001")) == before
    await _not_recorded(pos, req)
    # The forged request did not squat its idempotency key: the genuine one goes through.
    genuine = pos.auth_request(VISA, 700, key=req.idempotency_key, pin=PIN)
    assert code(await pos.authorize(genuine)) == "00"


async def test_right_pin_approves_wrong_pin_is_55_without_a_hold(pos, books):
    ok = await pos.authorize(pos.auth_request(VISA, 321, pin=PIN))
    assert code(ok) == "00"
    before = await books.account("bank-a", "A-1001")
    wrong = await pos.authorize(pos.auth_request(VISA, 321, pin="1235"))
    assert code(wrong) == "55" and wrong.auth_code == ""
    assert (await books.account("bank-a", "A-1001")) == before
    tx = await pos.get(wrong.transaction_id)
    assert tx.state == terminal_pb2.TRANSACTION_STATE_DECLINED
    with pytest.raises(grpc.aio.AioRpcError) as no_hold:
        await books.hold("bank-a", wrong.rrn)
    assert no_hold.value.code() == grpc.StatusCode.NOT_FOUND


async def test_pin_is_routed_to_the_zone_of_the_chosen_acquirer(pos):
    """Discover goes to acq-beta (the grocer's first acquirer, acq-alpha, does not carry it):
    the PIN block must be translated for acq-beta's zone, or the issuer would answer 55."""
    resp = await pos.authorize(
        pos.auth_request("6011111111111117", 500, expiry="2903", pin="908172")
    )
    assert code(resp) == "00" and resp.acquirer_id == "acq-beta"


async def test_cvv2_right_approves_wrong_is_05(pos, books, chips):
    cvv2 = await chips.cvv2(VISA)
    ok = await pos.authorize(pos.auth_request(VISA, 222, cvv2=cvv2))
    assert code(ok) == "00"
    before = await books.account("bank-a", "A-1001")
    wrong = f"{(int(cvv2) + 1) % 1000:03d}"
    bad = await pos.authorize(pos.auth_request(VISA, 222, cvv2=wrong))
    assert code(bad) == "05"
    assert (await books.account("bank-a", "A-1001")) == before


async def test_chip_sale_arpc_is_verified_by_the_card(pos, books, chips):
    emv = await chips.arqc(VISA, 1111, "EUR")
    before = await books.account("bank-a", "A-1001")
    resp = await pos.authorize(pos.auth_request(VISA, 1111, emv=emv))
    assert code(resp) == "00" and len(resp.arpc) == 8
    assert await chips.verify_arpc(VISA, emv, resp.response_code, resp.arpc)
    assert not await chips.verify_arpc(VISA, emv, "05", resp.arpc)  # bound to the answer
    after = await books.account("bank-a", "A-1001")
    assert after.held - before.held == 1111


async def test_bad_arqc_is_05_with_no_arpc_and_no_hold(pos, books, chips):
    emv = await chips.arqc(VISA, 1200, "EUR")
    emv.arqc = bytes(b ^ 0xFF for b in emv.arqc)
    before = await books.account("bank-a", "A-1001")
    resp = await pos.authorize(pos.auth_request(VISA, 1200, emv=emv))
    assert code(resp) == "05" and resp.arpc == b""
    assert (await books.account("bank-a", "A-1001")) == before


async def test_arqc_for_another_amount_is_05(pos, chips):
    emv = await chips.arqc(VISA, 1300, "EUR")
    resp = await pos.authorize(pos.auth_request(VISA, 1301, emv=emv))
    assert code(resp) == "05"


async def test_a_retry_replays_the_arpc(pos, chips):
    emv = await chips.arqc(VISA, 1400, "EUR")
    req = pos.auth_request(VISA, 1400, emv=emv, pin=PIN)
    first = await pos.authorize(req)
    again = await pos.authorize(req)
    assert code(first) == "00" and again == first and len(again.arpc) == 8


async def _vault_row(url: str, tx_id: str) -> tuple[str, bytes, int]:
    """The transaction's card token and its vault entry, read through the store interface
    (the same on every backend)."""
    store = open_store(url)
    await store.open()
    try:
        tx = await store.get_transaction(tx_id)
        entry = await store.get_vault_entry(tx.card_token)
    finally:
        await store.close()
    return tx.card_token, bytes(entry.blob), entry.key_version


async def test_the_pan_is_vaulted_encrypted_and_recoverable_by_token(stack, pos):
    resp = await pos.authorize(pos.auth_request("5555555555554444", 400, expiry="2906"))
    assert code(resp) == "00"
    token, blob, version = await _vault_row(stack.store_url, resp.transaction_id)
    assert b"5555555555554444" not in blob and version >= 1
    assert len(token) == 64  # the full HMAC-SHA256 token, not a PAN shape
    # What settlement does: open the blob in the HSM, bound to its token.
    pan = await HsmPool().run(vault.decrypt, blob, token.encode())
    assert pan == b"5555555555554444"
