"""Luhn, the IIN table and masking, against the card brands' published test numbers."""

import pytest

from payswitch.cards import CardError, Scheme, bin_of, check_expiry, check_pan, luhn_valid, mask_pan


@pytest.mark.parametrize(
    ("pan", "scheme"),
    [
        ("4111111111111111", Scheme.VISA),
        ("4012888888881881", Scheme.VISA),
        ("4222222222222", Scheme.VISA),  # 13-digit Visa
        ("5555555555554444", Scheme.MASTERCARD),
        ("5105105105105100", Scheme.MASTERCARD),
        ("2223000048400011", Scheme.MASTERCARD),  # 2-series
        ("2720999999999996", Scheme.MASTERCARD),  # top of the 2-series range
        ("378282246310005", Scheme.AMEX),
        ("371449635398431", Scheme.AMEX),
        ("6011111111111117", Scheme.DISCOVER),
        ("6445644564456445", Scheme.DISCOVER),
        ("3530111333300000", Scheme.JCB),
        ("3566002020360505", Scheme.JCB),
        ("6200000000000005", Scheme.UNIONPAY),
        ("6221260000000000", Scheme.DISCOVER),  # co-branded range: Discover wins
    ],
)
def test_scheme_of_test_cards(pan, scheme):
    assert luhn_valid(pan), pan
    assert check_pan(pan) is scheme


@pytest.mark.parametrize(
    "pan",
    [
        "4111111111111112",  # Luhn
        "411111111111",  # too short for Visa
        "1234567812345670",  # Luhn-valid, no scheme
        "2721000000000004",  # just past the Mastercard 2-series
        "41111111111111a1",
        "",
        "4" * 20,
    ],
)
def test_bad_pans_are_refused_without_echoing_them(pan):
    with pytest.raises(CardError) as err:
        check_pan(pan)
    assert err.value.field == "card.pan"
    if pan:
        assert pan not in str(err.value)


def test_mask_keeps_first_six_last_four():
    assert mask_pan("4111111111111111") == "411111******1111"
    assert mask_pan("378282246310005") == "378282*****0005"


def test_bin_of_is_routing_prefix():
    assert bin_of("4111111111111111") == "41111111"
    assert bin_of("378282246310005") == "378282"


@pytest.mark.parametrize("expiry", ["2812", "0001", "9912"])
def test_expiry_ok(expiry):
    check_expiry(expiry)


@pytest.mark.parametrize("expiry", ["2813", "2800", "12/28", "281", "", "abcd"])
def test_expiry_bad(expiry):
    with pytest.raises(CardError):
        check_expiry(expiry)
