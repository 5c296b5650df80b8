"""Conversion and rounding (payswitch.fx): worked examples per exponent and properties."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from payswitch import fx
from payswitch.money import MAX_MINOR_UNITS, exponent

TABLE = fx.RateTable(
    version="visanet-2026-12-07",
    effective=date(2026, 12, 7),
    base="EUR",
    quotes=(
        ("USD", Decimal("1.08250000")),
        ("JPY", Decimal("161.37000000")),
        ("KWD", Decimal("0.33310000")),
    ),
)


def test_worked_examples_per_exponent() -> None:
    # 2 -> 2: 12.34 USD at 0.92378753 EUR/USD = 11.3995381... -> 11.40 EUR
    c = TABLE.convert(1234, "USD", "EUR")
    assert fx.format_rate(c.rate) == "0.92378753"
    assert (c.billing_minor, c.billing_currency) == (1140, "EUR")
    # 3 -> 0: 10.000 KWD at 484.44911438 JPY/KWD = 4844.49... -> 4844 JPY
    c = TABLE.convert(10_000, "KWD", "JPY")
    assert fx.format_rate(c.rate) == "484.44911438"
    assert c.billing_minor == 4844
    # 0 -> 3: 1000 JPY at 0.00206420 KWD/JPY = 2.0642 -> 2.064 KWD
    c = TABLE.convert(1000, "JPY", "KWD")
    assert (fx.format_rate(c.rate), c.billing_minor) == ("0.00206420", 2064)


def test_half_up_on_the_minor_unit() -> None:
    assert fx.convert(1, "EUR", "USD", Decimal("0.50000000")) == 1  # 0.005 USD -> 0.01
    assert fx.convert(1, "EUR", "USD", Decimal("0.49999999")) == 0
    assert fx.convert(5, "KWD", "JPY", Decimal("100.00000000")) == 1  # 0.5 JPY -> 1


def test_rate_text_is_exact_and_bounded() -> None:
    assert fx.parse_rate("1.0825") == Decimal("1.08250000")
    for bad in ("0", "-1", "1.000000001", "nan", "inf", "x"):
        with pytest.raises(fx.FxError):
            fx.parse_rate(bad)


def test_table_in_force_is_the_latest_effective() -> None:
    later = fx.RateTable("v2", date(2026, 12, 8), "EUR", (("USD", Decimal("1.1")),))
    tables = (TABLE, later)
    assert fx.table_for(tables, date(2026, 12, 6)) is None
    assert fx.table_for(tables, date(2026, 12, 7)) is TABLE
    assert fx.table_for(tables, date(2026, 12, 9)) is later


def test_missing_currency_is_named() -> None:
    with pytest.raises(fx.FxError, match="GBP"):
        TABLE.rate("GBP", "EUR")


def test_dcc_offer_discloses_markup() -> None:
    offer = fx.dcc_offer(TABLE, 10_000, "EUR", "USD", 300)  # 100.00 EUR, 3 %
    assert offer.wholesale_rate == Decimal("1.08250000")
    assert offer.rate == Decimal("1.11497500")
    assert offer.billing_minor == 11150
    with pytest.raises(fx.FxError):
        fx.dcc_offer(TABLE, 100, "EUR", "USD", fx.MAX_MARKUP_BPS + 1)


CURRENCIES = st.sampled_from(["JPY", "EUR", "USD", "KWD"])
RATES = st.decimals(
    min_value=Decimal("0.00000001"), max_value=Decimal("1000"), places=8, allow_nan=False
)


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(min_value=1, max_value=10**9),
    cuts=st.lists(st.floats(min_value=0, max_value=1), max_size=6),
    source=CURRENCIES,
    target=CURRENCIES,
    rate=RATES,
)
def test_parts_add_up_to_the_whole(
    total: int, cuts: list[float], source: str, target: str, rate: Decimal
) -> None:
    """Authorization -> partial captures -> refunds: no minor unit created or lost."""
    assume(total * rate * 10 ** max(0, exponent(target) - exponent(source)) < MAX_MINOR_UNITS)
    # split the captured total into parts (the float only picks cut points, never an amount)
    points = sorted({0, total, *(int(total * c) for c in cuts)})
    parts = [b - a for a, b in itertools.pairwise(points)]
    done = billed = 0
    for part in parts:
        billed += fx.allocate(done, part, source, target, rate)
        done += part
    whole = fx.convert(total, source, target, rate)
    assert billed == whole
    # the authorization held at least what any capture up to it posts (monotonic rounding)
    authorized = total + parts[-1]
    if authorized * rate * 10 ** max(0, exponent(target) - exponent(source)) < MAX_MINOR_UNITS:
        assert fx.convert(authorized, source, target, rate) >= whole
    # refunding every part again, cumulatively, gives back exactly what was billed
    done = refunded = 0
    for part in reversed(parts):
        refunded += fx.allocate(done, part, source, target, rate)
        done += part
    assert refunded == billed
    assert 0 <= whole <= MAX_MINOR_UNITS


@settings(max_examples=300, deadline=None)
@given(amount=st.integers(min_value=0, max_value=10**9), source=CURRENCIES, target=CURRENCIES,
       rate=RATES)  # fmt: skip
def test_rounding_is_within_half_a_minor_unit(
    amount: int, source: str, target: str, rate: Decimal
) -> None:
    if source == target:
        return
    exact = Decimal(amount).scaleb(exponent(target) - exponent(source)) * rate
    if exact > MAX_MINOR_UNITS:
        with pytest.raises(fx.FxError):
            fx.convert(amount, source, target, rate)
        return
    got = fx.convert(amount, source, target, rate)
    assert abs(Decimal(got) - exact) <= Decimal("0.5")
    assert got >= 0


def test_topology_rate_tables() -> None:
    from pathlib import Path

    from payswitch.world.topology import TopologyError, billing_currency, load, parse

    topo = load(Path(__file__).parents[2] / "topology" / "default.toml")
    assert all(s.rates for s in topo.schemes)
    assert topo.dcc_markup_bps == 300
    assert billing_currency(topo, "3530111333300000") == "JPY"
    assert billing_currency(topo, "4012888888881881") is None
    bad = {"schemes": [{"id": "s", "listen": "127.0.0.1:1", "brands": ["visa"],
                        "rates": [{"version": "v", "effective": "2026-01-01", "base": "EUR",
                                   "quotes": {"USD": 1.1}}]}]}  # fmt: skip
    with pytest.raises(TopologyError, match=r"quotes\.USD must be a string"):
        parse(bad)


@settings(max_examples=300, deadline=None)
@given(whole=st.integers(min_value=1, max_value=10**9), rate=RATES,
       pair=st.sampled_from([("EUR", "USD"), ("KWD", "JPY"), ("JPY", "KWD"), ("USD", "KWD")]),
       cut=st.floats(min_value=0, max_value=1))  # fmt: skip
def test_a_chargeback_converts_back_within_the_sale(
    whole: int, rate: Decimal, pair: tuple[str, str], cut: float
) -> None:
    """Billed whole -> whole; any part -> a share within the sale, monotonic."""
    billed = fx.convert(whole, *pair, rate) if whole * rate < 10**9 else 0
    assume(billed > 0)
    assert fx.convert_back(billed, billed, whole) == whole
    part = int(billed * cut)
    share = fx.convert_back(part, billed, whole)
    assert 0 <= share <= whole
    assert share <= fx.convert_back(min(billed, part + 1), billed, whole)


@pytest.mark.parametrize("kind", ["FX_CAPTURE_SETTLED", "FX_REFUND_SETTLED"])
def test_fx_postings_balance_in_the_billing_currency(kind: str) -> None:
    """Billed at the authorization's rate, cleared at another: the difference in one account."""
    from switch.backoffice.ledger import accounts as ac
    from switch.backoffice.ledger.events import Event, EventKind
    from switch.backoffice.ledger.rules import lines_for

    event = Event(EventKind(kind), "tx", "0", "M", "A", "mastercard", 5_500, "USD", 0.0,
                  cleared_minor=5_413)  # fmt: skip
    lines = {line.account: line.amount_minor for line in lines_for(event)}
    assert sum(lines.values()) == 0 and {line.currency for line in lines_for(event)} == {"USD"}
    sign = 1 if kind == "FX_CAPTURE_SETTLED" else -1
    assert lines[ac.issuer_receivable("mastercard")] == sign * 5_500
    assert lines[ac.FX_DIFFERENCE] == sign * (5_413 - 5_500)
