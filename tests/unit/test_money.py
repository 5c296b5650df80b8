"""Money parsing and formatting: integers in minor units with ISO 4217 exponents."""

import pytest

from payswitch.money import (
    MAX_MINOR_UNITS,
    Amount,
    MoneyError,
    check_positive,
    exponent,
    format_major,
    parse_major,
)


@pytest.mark.parametrize(
    ("currency", "exp"), [("EUR", 2), ("USD", 2), ("JPY", 0), ("KWD", 3), ("BHD", 3), ("CLP", 0)]
)
def test_exponents_follow_iso_4217(currency, exp):
    assert exponent(currency) == exp


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.50", "EUR", 1250),
        ("12.5", "EUR", 1250),
        ("12", "EUR", 1200),
        ("0.01", "EUR", 1),
        ("1000", "JPY", 1000),
        ("1.250", "KWD", 1250),
        ("0.001", "KWD", 1),
    ],
)
def test_parse_major(text, currency, minor):
    assert parse_major(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("12.505", "EUR"),  # more decimals than EUR has
        ("10.5", "JPY"),  # JPY has none
        ("-1.00", "EUR"),
        ("1e3", "EUR"),
        ("12,50", "EUR"),
        ("", "EUR"),
        ("NaN", "EUR"),
        ("9999999999999", "JPY"),  # 13 digits
    ],
)
def test_parse_major_refuses(text, currency):
    with pytest.raises(MoneyError):
        parse_major(text, currency)


def test_unknown_currency_is_refused():
    with pytest.raises(MoneyError) as err:
        parse_major("1.00", "XXX")
    assert err.value.field == "currency"


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [(1250, "EUR", "12.50"), (5, "EUR", "0.05"), (1000, "JPY", "1000"), (1, "KWD", "0.001")],
)
def test_format_major(minor, currency, text):
    assert format_major(minor, currency) == text
    assert parse_major(text, currency) == minor


def test_amount_never_mixes_currencies():
    with pytest.raises(MoneyError):
        Amount(100, "EUR") + Amount(100, "USD")
    assert (Amount(100, "EUR") + Amount(50, "EUR")).minor_units == 150
    assert Amount(1250, "KWD").format() == "1.250 KWD"


def test_amount_refuses_floats():
    with pytest.raises(MoneyError):
        Amount(12.5, "EUR")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("minor", "currency", "field"),
    [
        (0, "EUR", "amount.minor_units"),
        (-5, "EUR", "amount.minor_units"),
        (MAX_MINOR_UNITS + 1, "EUR", "amount.minor_units"),
        (100, "", "amount.currency"),
        (100, "eur", "amount.currency"),
        (100, "ZZZ", "amount.currency"),
    ],
)
def test_check_positive_names_the_field(minor, currency, field):
    with pytest.raises(MoneyError) as err:
        check_positive(minor, currency)
    assert err.value.field == field
