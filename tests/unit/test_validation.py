"""Validation of terminal requests: each bad field is named in the INVALID_ARGUMENT."""

import pytest

from payswitch import cards
from payswitch.money import MoneyError, parse_major
from payswitch.v1 import common_pb2, network_pb2, terminal_pb2
from switch.wire import validation
from switch.wire.errors import InvalidArgument

KSN = bytes.fromhex("0000000112345678") + (1).to_bytes(4, "big")


def emv() -> network_pb2.EmvData:
    return network_pb2.EmvData(
        arqc=bytes(8),
        atc=b"\x00\x01",
        unpredictable_number=bytes(4),
        pan_sequence_number="00",
        amount_authorised=bytes.fromhex("000000001250"),
        amount_other=bytes(6),
        terminal_country_code=b"\x02\x76",
        tvr=bytes(5),
        transaction_currency_code=b"\x09\x78",
        transaction_date=bytes.fromhex("261121"),
        transaction_type=b"\x00",
        aip=b"\x18\x00",
    )


def good() -> terminal_pb2.AuthorizeRequest:
    """Structurally valid: validation never looks inside the ciphertext or checks the MAC."""
    return terminal_pb2.AuthorizeRequest(
        idempotency_key="k-1",
        terminal_id="T-0001",
        merchant_id="M-GROCER",
        stan=1,
        local_time="2026-11-21T14:03:05",
        amount=common_pb2.Money(minor_units=1250, currency="EUR"),
        entry_mode=common_pb2.ENTRY_MODE_CHIP,
        encrypted_card=terminal_pb2.EncryptedCard(ksn=KSN, ciphertext=bytes(32)),
        pin_block=bytes(16),
        emv=emv(),
        mac=bytes(16),
    )


def test_good_request_passes():
    when = validation.authorize(good())
    assert when.year == 2026


def test_pin_and_chip_data_are_optional():
    req = good()
    req.ClearField("pin_block")
    req.ClearField("emv")
    validation.authorize(req)


def test_clear_card_is_refused_even_next_to_encrypted_data():
    req = good()
    req.card.pan = "4111111111111111"
    req.card.expiry = "2812"
    with pytest.raises(InvalidArgument) as err:
        validation.authorize(req)
    assert err.value.field == "card"
    assert err.value.description == "clear card data is not accepted; send encrypted_card"
    assert "4111111111111111" not in str(err.value)


def _mutations():
    def drop(field):
        def f(r):
            r.ClearField(field)

        return f

    def setter(path, value):
        def f(r):
            obj = r
            *head, last = path.split(".")
            for part in head:
                obj = getattr(obj, part)
            setattr(obj, last, value)

        return f

    return [
        (drop("terminal_id"), "terminal_id"),
        (drop("merchant_id"), "merchant_id"),
        (drop("stan"), "stan"),
        (drop("local_time"), "local_time"),
        (drop("amount"), "amount"),
        (drop("encrypted_card"), "encrypted_card"),
        (drop("mac"), "mac"),
        (drop("entry_mode"), "entry_mode"),
        (setter("idempotency_key", "bad key!"), "idempotency_key"),
        (setter("idempotency_key", "k" * 65), "idempotency_key"),
        # a trailing newline or non-ASCII digits never pass for an identifier or a time
        (setter("idempotency_key", "key-1\n"), "idempotency_key"),
        (setter("terminal_id", "T-0001\n"), "terminal_id"),
        (setter("merchant_id", "M-GROCER\n"), "merchant_id"),
        (setter("local_time", "2026-11-21T14:03:05\n"), "local_time"),
        (setter("local_time", "2026-11-21T14:03:0\u0665"), "local_time"),
        (setter("terminal_id", "T" * 33), "terminal_id"),
        (setter("merchant_id", "M;DROP"), "merchant_id"),
        (setter("stan", 1_000_000), "stan"),
        (setter("local_time", "2026-11-21 14:03:05"), "local_time"),
        (setter("local_time", "2026-13-21T14:03:05"), "local_time"),
        (setter("local_time", "1999-11-21T14:03:05"), "local_time"),
        (setter("amount.minor_units", 0), "amount.minor_units"),
        (setter("amount.minor_units", -100), "amount.minor_units"),
        (setter("amount.minor_units", 10**12), "amount.minor_units"),
        (setter("amount.currency", "XYZ"), "amount.currency"),
        (setter("amount.currency", ""), "amount.currency"),
        (setter("amount.currency", "EURO" * 100), "amount.currency"),
        (setter("entry_mode", 99), "entry_mode"),
        (setter("encrypted_card.ksn", KSN[:11]), "encrypted_card.ksn"),
        (setter("encrypted_card.ksn", KSN[:8] + bytes(4)), "encrypted_card.ksn"),  # counter 0
        (setter("encrypted_card.ksn", KSN[:8] + b"\xff\xff\xff\xff"), "encrypted_card.ksn"),
        (setter("encrypted_card.ciphertext", b""), "encrypted_card.ciphertext"),
        (setter("encrypted_card.ciphertext", bytes(31)), "encrypted_card.ciphertext"),
        (setter("encrypted_card.ciphertext", bytes(272)), "encrypted_card.ciphertext"),
        (setter("pin_block", bytes(8)), "pin_block"),
        (setter("mac", bytes(8)), "mac"),
        (setter("emv.arqc", bytes(7)), "emv.arqc"),
        (setter("emv.atc", b""), "emv.atc"),
        (setter("emv.amount_authorised", bytes(5)), "emv.amount_authorised"),
        (setter("emv.issuer_application_data", bytes(33)), "emv.issuer_application_data"),
        (setter("emv.pan_sequence_number", "1"), "emv.pan_sequence_number"),
        (setter("entry_mode", common_pb2.ENTRY_MODE_MANUAL), "emv"),  # chip data, no chip
    ]


@pytest.mark.parametrize(("mutate", "field"), _mutations())
def test_each_bad_field_is_named(mutate, field):
    req = good()
    mutate(req)
    with pytest.raises(InvalidArgument) as err:
        validation.authorize(req)
    assert err.value.field == field
    assert "4111111111111111" not in str(err.value)


def test_invalid_argument_carries_bad_request_details():
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status  # noqa: F401  (the status is built with it)

    status = InvalidArgument("card.pan", "fails the Luhn check").to_status()
    details = dict(status.trailing_metadata)["grpc-status-details-bin"]
    from google.rpc import status_pb2

    parsed = status_pb2.Status.FromString(details)
    bad = error_details_pb2.BadRequest()
    assert parsed.details[0].Unpack(bad)
    assert bad.field_violations[0].field == "card.pan"


@pytest.mark.parametrize(
    "value", ["4111111111111111\n", "\u0664111111111111111", "411111111111111\u0661"]
)
def test_a_pan_with_a_newline_or_non_ascii_digits_is_refused(value):
    with pytest.raises(cards.CardError):
        cards.check_pan(value)


@pytest.mark.parametrize("value", ["2812\n", "\u0662812"])
def test_an_expiry_with_a_newline_or_non_ascii_digits_is_refused(value):
    with pytest.raises(cards.CardError):
        cards.check_expiry(value)


@pytest.mark.parametrize("text", ["\u0661\u0662.50", "12.\u0665\u0660"])
def test_an_amount_with_non_ascii_digits_is_refused(text):
    with pytest.raises(MoneyError):
        parse_major(text, "EUR")
