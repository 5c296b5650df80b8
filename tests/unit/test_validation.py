"""Validation of terminal requests: each bad field is named in the INVALID_ARGUMENT."""

import pytest

from payswitch.v1 import common_pb2, terminal_pb2
from switch import validation
from switch.errors import InvalidArgument


def good() -> terminal_pb2.AuthorizeRequest:
    return terminal_pb2.AuthorizeRequest(
        idempotency_key="k-1",
        terminal_id="T-0001",
        merchant_id="M-GROCER",
        stan=1,
        local_time="2026-11-21T14:03:05",
        amount=common_pb2.Money(minor_units=1250, currency="EUR"),
        entry_mode=common_pb2.ENTRY_MODE_CHIP,
        card=terminal_pb2.Card(pan="4111111111111111", expiry="2812"),
    )


def test_good_request_passes():
    scheme, when = validation.authorize(good())
    assert scheme.value == "visa"
    assert when.year == 2026


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
        (drop("card"), "card"),
        (drop("entry_mode"), "entry_mode"),
        (setter("idempotency_key", "bad key!"), "idempotency_key"),
        (setter("idempotency_key", "k" * 65), "idempotency_key"),
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
        (setter("card.pan", "4111111111111112"), "card.pan"),
        (setter("card.pan", "4" * 4096), "card.pan"),
        (setter("card.pan", ""), "card.pan"),
        (setter("card.expiry", "1328"), "card.expiry"),
        (setter("card.expiry", ""), "card.expiry"),
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
