"""Pricing: legal ticks, never more aggressive than asked, monotone in the step, in both price regimes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repeg.domain.orders import Side
from repeg.domain.quote import Quote
from repeg.domain.ticks import is_legal_price
from repeg.errors import SafetyLimitError
from repeg.policy.pricing import (
    check_price_collar,
    escalation_limit,
    initial_limit,
    near_far,
    peg_price,
    repeg_limit,
)

TS = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def make_quote(bid: Decimal, ask: Decimal, symbol: str = "XYZ") -> Quote:
    return Quote(symbol=symbol, bid=bid, bid_size=Decimal(100), ask=ask, ask_size=Decimal(100), ts=TS)


# Quotes in the penny regime (>= $1) and the sub-penny regime (< $1), spreads of 1 to 50 ticks.
penny_quotes = st.builds(
    lambda cents, ticks: make_quote(Decimal(cents) / 100, Decimal(cents + ticks) / 100),
    st.integers(100, 500_000),
    st.integers(1, 50),
)
subpenny_quotes = st.builds(
    lambda units, ticks: make_quote(Decimal(units) / 10_000, Decimal(units + ticks) / 10_000),
    st.integers(1, 9_000),
    st.integers(1, 500),
)
# Quotes straddling $1.00 (bid below, ask at or above): a peg price crosses from one tick regime into the other.
straddling_quotes = st.builds(
    lambda units, cents: make_quote(Decimal(units) / 10_000, Decimal(cents) / 100),
    st.integers(9_000, 9_999),
    st.integers(100, 110),
)
# Quotes above $1.00 off the penny grid (half-penny touches, as in the shared NYSE replay data: 158.4550 / 158.5050):
# the touches themselves are not legal limit prices, so every peg price must still be rounded onto the penny grid.
off_grid_quotes = st.builds(
    lambda units, ticks: make_quote(Decimal(units) / 10_000, Decimal(units + ticks) / 10_000),
    st.integers(10_000, 5_000_000).map(lambda units: units - units % 50 + 50),
    st.integers(1, 20).map(lambda halves: halves * 50),
)
quotes = st.one_of(penny_quotes, subpenny_quotes, straddling_quotes)
every_quote = st.one_of(quotes, off_grid_quotes)
fractions = st.decimals(min_value=0, max_value=1, places=4)
sides = st.sampled_from(Side)


def unrounded(q: Quote, side: Side, fraction: Decimal) -> Decimal:
    near, far = near_far(q, side)
    return near + fraction * (far - near)


@given(every_quote, sides, fractions)
def test_peg_price_is_on_a_legal_tick(q: Quote, side: Side, fraction: Decimal) -> None:
    assert is_legal_price(peg_price(q, side, fraction))


@given(every_quote, sides, fractions)
def test_peg_price_is_never_more_aggressive_than_asked(q: Quote, side: Side, fraction: Decimal) -> None:
    price = peg_price(q, side, fraction)
    raw = unrounded(q, side, fraction)
    if side is Side.BUY:
        assert price <= raw
    else:
        assert price >= raw


@given(every_quote, sides, fractions, fractions)
def test_peg_price_is_monotone_in_the_step(q: Quote, side: Side, a: Decimal, b: Decimal) -> None:
    low, high = sorted((a, b))
    if side is Side.BUY:
        assert peg_price(q, side, low) <= peg_price(q, side, high)
    else:
        assert peg_price(q, side, low) >= peg_price(q, side, high)


@given(quotes, sides, fractions)
def test_peg_price_stays_within_the_touches(q: Quote, side: Side, fraction: Decimal) -> None:
    assert q.bid <= peg_price(q, side, fraction) <= q.ask


def test_initial_offset_zero_joins_the_near_touch() -> None:
    q = make_quote(Decimal("10.00"), Decimal("10.10"))
    assert initial_limit(q, Side.BUY, Decimal(0)) == Decimal("10.00")
    assert initial_limit(q, Side.SELL, Decimal(0)) == Decimal("10.10")


def test_half_a_one_cent_spread_rounds_to_the_passive_side() -> None:
    q = make_quote(Decimal("10.00"), Decimal("10.01"))
    assert repeg_limit(q, Side.BUY, Decimal("0.5")) == Decimal("10.00")
    assert repeg_limit(q, Side.SELL, Decimal("0.5")) == Decimal("10.01")


def test_sub_dollar_prices_use_the_sub_penny_tick() -> None:
    q = make_quote(Decimal("0.5000"), Decimal("0.5011"))
    assert repeg_limit(q, Side.BUY, Decimal("0.5")) == Decimal("0.5005")
    assert repeg_limit(q, Side.SELL, Decimal("0.5")) == Decimal("0.5006")


def test_repeg_sequence_walks_toward_the_far_touch() -> None:
    q = make_quote(Decimal("100.00"), Decimal("100.08"))
    steps = [Decimal("0.5"), Decimal("0.75"), Decimal("1.0")]
    assert [repeg_limit(q, Side.BUY, s) for s in steps] == [
        Decimal("100.04"),
        Decimal("100.06"),
        Decimal("100.08"),
    ]
    assert [repeg_limit(q, Side.SELL, s) for s in steps] == [
        Decimal("100.04"),
        Decimal("100.02"),
        Decimal("100.00"),
    ]


def test_fraction_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="fraction"):
        peg_price(make_quote(Decimal(1), Decimal(2)), Side.BUY, Decimal("1.5"))


def test_escalation_limit_is_the_far_touch_plus_the_collar_rounded_passively() -> None:
    q = make_quote(Decimal("100.00"), Decimal("100.10"))
    assert escalation_limit(q, Side.BUY, Decimal(50)) == Decimal("100.60")  # 100.10 * 1.005 = 100.6005
    assert escalation_limit(q, Side.SELL, Decimal(50)) == Decimal("99.50")


@given(quotes, sides, st.decimals(min_value=1, max_value=500, places=0))
def test_escalation_limit_is_marketable_and_within_its_collar(q: Quote, side: Side, bps: Decimal) -> None:
    price = escalation_limit(q, side, bps)
    assert is_legal_price(price)
    if side is Side.BUY:
        assert q.ask <= price <= q.ask * (1 + bps / 10_000)
    else:
        assert q.bid * (1 - bps / 10_000) <= price <= q.bid


def test_an_escalation_collar_narrower_than_the_way_to_the_next_tick_keeps_the_limit_inside_it() -> None:
    # A half-penny ask above $1 is no legal limit price: 1.51 would be 33 bps beyond it, outside a 20 bps collar.
    q = make_quote(Decimal("1.4950"), Decimal("1.5050"))
    assert escalation_limit(q, Side.BUY, Decimal(20)) == Decimal("1.50")
    assert escalation_limit(q, Side.SELL, Decimal(20)) == Decimal("1.50")


def test_price_collar_accepts_a_limit_inside_it() -> None:
    check_price_collar(Decimal("104.99"), make_quote(Decimal("99.99"), Decimal("100.01")), Decimal(5))


def test_price_collar_refusal_names_the_limit_and_the_value() -> None:
    arrival = make_quote(Decimal("99.99"), Decimal("100.01"))
    with pytest.raises(SafetyLimitError) as caught:
        check_price_collar(Decimal("106.00"), arrival, Decimal(5))
    assert caught.value.limit == "price_collar_pct"
    assert caught.value.limit_value == Decimal(5)
    assert caught.value.value == Decimal("6.0000")
    assert "XYZ" in str(caught.value)


def test_price_collar_refuses_a_limit_beyond_it_by_less_than_the_reporting_quantum() -> None:
    # 630000.02 is 5.0000033% from the 600000 mid: beyond a 5% collar, though it rounds to 5.0000 at 1e-4 %.
    arrival = make_quote(Decimal("599999.99"), Decimal("600000.01"), symbol="BRK.A")
    with pytest.raises(SafetyLimitError) as caught:
        check_price_collar(Decimal("630000.02"), arrival, Decimal(5))
    assert caught.value.value == Decimal("5.0001")
    check_price_collar(Decimal("630000.00"), arrival, Decimal(5))  # exactly on the collar: allowed


def test_price_collar_refuses_a_limit_below_the_mid_beyond_it() -> None:
    arrival = make_quote(Decimal("99.99"), Decimal("100.01"))
    with pytest.raises(SafetyLimitError) as caught:
        check_price_collar(Decimal("94.00"), arrival, Decimal(5))
    assert caught.value.value == Decimal("6.0000")


def test_a_sell_escalation_collar_of_100_pct_or_more_gives_the_lowest_legal_price() -> None:
    # The config refuses a collar of 10000 bps or more (and one not under price_collar_pct), but this pure
    # function does not rely on it: a wider collar (far - collar <= 0) gives the lowest legal price, no crash.
    q = make_quote(Decimal("100.00"), Decimal("100.02"))
    for bps in (Decimal(10_000), Decimal(25_000)):
        assert escalation_limit(q, Side.SELL, bps) == Decimal("0.0001")
