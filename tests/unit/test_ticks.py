"""Tick rules: every rounded price is legal, directional, and never more than one tick away."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repeg.domain.ticks import (
    MAX_PRICE,
    PENNY,
    SUB_PENNY,
    Rounding,
    bps,
    from_units,
    is_legal_price,
    round_qty_down,
    round_to_tick,
    tick_size,
    to_units,
)

prices = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("100000"), places=6)
sub_dollar = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("0.999999"), places=6)


@given(prices, st.sampled_from(list(Rounding)))
def test_rounded_price_is_always_legal(price, rounding):
    assert is_legal_price(round_to_tick(price, rounding))


@given(prices)
def test_rounding_down_never_raises_the_price(price):
    assert round_to_tick(price, Rounding.DOWN) <= price


@given(prices)
def test_rounding_up_never_lowers_the_price(price):
    assert round_to_tick(price, Rounding.UP) >= price


@given(prices, st.sampled_from(list(Rounding)))
def test_rounding_moves_less_than_one_tick(price, rounding):
    # Less than one tick of the regime the move ends in: a sub-dollar price moves by under $0.0001 (also when
    # rounding up lands on $1.00 exactly), never by up to a cent.
    rounded = round_to_tick(price, rounding)
    assert abs(rounded - price) < tick_size(min(price, rounded))


@given(sub_dollar)
def test_sub_dollar_prices_keep_four_decimals(price):
    rounded = round_to_tick(price, Rounding.DOWN)
    assert rounded == rounded.quantize(SUB_PENNY)
    assert price - rounded < SUB_PENNY  # the fourth decimal is kept, not rounded away to a penny


@given(prices, st.sampled_from(list(Rounding)))
def test_rounding_is_idempotent(price, rounding):
    once = round_to_tick(price, rounding)
    assert round_to_tick(once, rounding) == once


@pytest.mark.parametrize(
    ("price", "rounding", "expected"),
    [
        (Decimal("157.234"), Rounding.DOWN, Decimal("157.23")),
        (Decimal("157.234"), Rounding.UP, Decimal("157.24")),
        (Decimal("157.235"), Rounding.NEAREST, Decimal("157.24")),
        (Decimal("157.225"), Rounding.NEAREST, Decimal("157.22")),  # a half goes to the even tick, not up
        (Decimal("0.12345"), Rounding.DOWN, Decimal("0.1234")),
        (Decimal("0.12345"), Rounding.UP, Decimal("0.1235")),
        (Decimal("0.99995"), Rounding.UP, Decimal("1.00")),
        (Decimal("1.00"), Rounding.DOWN, Decimal("1.00")),
        (Decimal("0.00001"), Rounding.DOWN, Decimal("0.0001")),
    ],
)
def test_known_roundings(price, rounding, expected):
    assert round_to_tick(price, rounding) == expected


@pytest.mark.parametrize(
    "bad", [Decimal(0), Decimal(-1), Decimal("NaN"), Decimal("Infinity"), Decimal("1e30"), MAX_PRICE]
)
def test_non_positive_or_non_finite_prices_are_refused(bad):
    with pytest.raises(ValueError, match="positive finite"):
        round_to_tick(bad, Rounding.DOWN)


@pytest.mark.parametrize(
    ("price", "legal"),
    [
        (Decimal("1.00"), True),
        (Decimal("1.001"), False),
        (Decimal("0.9999"), True),
        (Decimal("0.99999"), False),
        (Decimal(0), False),
        (Decimal("NaN"), False),
        (Decimal("1e30"), False),
        (Decimal("1.000000000000000000000000000001"), False),
    ],
)
def test_price_legality(price, legal):
    assert is_legal_price(price) is legal


@given(st.integers(min_value=1, max_value=10**10))
def test_units_round_trip_exactly(units):
    assert to_units(from_units(units)) == units


def test_units_refuse_finer_than_sub_penny():
    with pytest.raises(ValueError, match="finer"):
        to_units(Decimal("1.00001"))


def test_quantity_rounds_down_to_whole_shares_for_non_fractionable():
    assert round_qty_down(Decimal("10.999"), whole_shares=True) == Decimal(10)
    assert round_qty_down(Decimal("10.1234567891"), whole_shares=False) == Decimal("10.123456789")


def test_one_dollar_itself_takes_the_penny_tick():
    assert tick_size(Decimal("1.00")) == PENNY
    assert tick_size(Decimal("0.9999")) == SUB_PENNY


def test_rounding_up_across_one_dollar_gives_a_two_decimal_price():
    # 0.99995 rounds up to 1.0000 on the sub-penny grid; it must come back as 1.00 (what a broker is sent).
    assert str(round_to_tick(Decimal("0.99995"), Rounding.UP)) == "1.00"


def test_bps_rounds_a_half_hundredth_to_even():
    assert bps(Decimal("0.0000125"), Decimal(1)) == Decimal("0.12")
    assert bps(Decimal("0.0000135"), Decimal(1)) == Decimal("0.14")


def test_bps_is_relative_to_reference():
    assert bps(Decimal("0.02"), Decimal("100")) == Decimal("2.00")
