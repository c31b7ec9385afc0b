"""The adaptive rule: cross, rest, or re-price from remaining time and the top of book."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from repeg.domain.orders import Side
from repeg.domain.quote import Quote
from repeg.lab.adaptive import BookState, Move, TrendTracker, book_state, choose, rest_price
from repeg.lab.fit import AdaptiveParams, FitConfig, FitRule, table_key
from repeg.lab.models import DataRef

CONFIG = FitConfig(horizons_s=(5.0, 20.0), offsets_ticks=(0, 1))
REF = DataRef(symbol="XXX", day=date(2018, 1, 2), quotes_file="q", trades_file=None, digest="d")
#: 2-cent spread (half-spread 100 units), balanced sizes, flat trend.
STATE = BookState(near=1_000_000, far=1_000_200, near_size=100, far_size=100, trend2=0)


def _params(join: float, improve: float, *, horizon_20_join: float | None = None) -> AdaptiveParams:
    n = CONFIG.n_cells
    costs = {
        table_key(5.0, 0): (join,) * n,
        table_key(5.0, 1): (improve,) * n,
        table_key(20.0, 0): ((join if horizon_20_join is None else horizon_20_join),) * n,
        table_key(20.0, 1): (improve,) * n,
    }
    return AdaptiveParams(
        rule=FitRule.PAPER,
        fit_data=REF,
        config=CONFIG,
        samples=n,
        wait_cost=costs,
        counts={k: (1,) * n for k in costs},
    )


def test_crosses_when_less_time_remains_than_the_shortest_horizon() -> None:
    choice = choose(_params(join=-100.0, improve=-50.0), STATE, remaining_s=4.9)
    assert choice.move is Move.CROSS


def test_rests_at_the_touch_when_waiting_is_expected_cheaper_than_the_half_spread() -> None:
    choice = choose(_params(join=20.0, improve=60.0), STATE, remaining_s=30.0)
    assert (choice.move, choice.offset_ticks, choice.expected_cost) == (Move.REST, 0, 20.0)


def test_reprices_one_tick_inside_when_that_is_cheapest() -> None:
    choice = choose(_params(join=20.0, improve=10.0), STATE, remaining_s=30.0)
    assert (choice.move, choice.offset_ticks) == (Move.REST, 1)


def test_crosses_when_waiting_is_expected_dearer_than_the_half_spread() -> None:
    choice = choose(_params(join=120.0, improve=150.0), STATE, remaining_s=30.0)
    assert choice.move is Move.CROSS
    assert choice.cross_cost == 100.0


def test_tie_goes_to_crossing() -> None:
    assert choose(_params(join=100.0, improve=100.0), STATE, remaining_s=30.0).move is Move.CROSS


def test_uses_the_longest_horizon_that_fits_the_remaining_time() -> None:
    params = _params(join=150.0, improve=150.0, horizon_20_join=50.0)
    assert choose(params, STATE, remaining_s=25.0).horizon_s == 20.0
    assert choose(params, STATE, remaining_s=25.0).move is Move.REST
    assert choose(params, STATE, remaining_s=19.0).move is Move.CROSS


def test_never_improves_into_a_one_tick_spread() -> None:
    one_tick = BookState(near=1_000_000, far=1_000_100, near_size=100, far_size=100, trend2=0)
    choice = choose(_params(join=60.0, improve=-500.0), one_tick, remaining_s=30.0)
    assert choice.move is Move.CROSS  # join (60) is dearer than the 50-unit half-spread; improving would lock


def test_sell_state_is_the_mirror_of_the_buy_state() -> None:
    quote = Quote(
        symbol="XXX",
        bid=Decimal("100.00"),
        bid_size=Decimal(300),
        ask=Decimal("100.02"),
        ask_size=Decimal(100),
        ts=datetime(2018, 1, 2, 15, tzinfo=UTC),
    )
    buy, sell = book_state(quote, Side.BUY, trend2=40), book_state(quote, Side.SELL, trend2=40)
    assert (buy.near, buy.near_size, buy.trend2) == (1_000_000, 300, 40)
    assert (sell.near, sell.near_size, sell.trend2) == (1_000_200, 100, -40)
    assert buy.spread == sell.spread == 200
    assert rest_price(quote, Side.BUY, 1, Decimal("0.01")) == Decimal("100.01")
    assert rest_price(quote, Side.SELL, 1, Decimal("0.01")) == Decimal("100.01")


def test_trend_is_the_mid_change_since_the_quote_in_force_a_lookback_ago() -> None:
    tracker = TrendTracker(lookback_ns=5)
    assert tracker.trend2(0) == 0
    tracker.record(0, 100, 200)  # mid2 300
    tracker.record(3, 110, 210)  # mid2 320
    tracker.record(9, 120, 220)  # mid2 340
    assert tracker.trend2(9) == 340 - 320  # in force at 9 - 5 = 4: the quote of t=3


def test_trend_tracker_refuses_quotes_out_of_order() -> None:
    tracker = TrendTracker(lookback_ns=5)
    tracker.record(10, 1, 2)
    with pytest.raises(ValueError, match="older"):
        tracker.record(9, 1, 2)


def test_rest_price_off_a_half_cent_touch_rounds_to_the_passive_side() -> None:
    quote = Quote(
        symbol="XXX",
        bid=Decimal("156.835"),
        bid_size=Decimal(100),
        ask=Decimal("156.855"),
        ask_size=Decimal(100),
        ts=datetime(2018, 1, 3, 15, tzinfo=UTC),
    )
    assert rest_price(quote, Side.SELL, 1, Decimal("0.01")) == Decimal("156.85")
    assert rest_price(quote, Side.BUY, 1, Decimal("0.01")) == Decimal("156.84")
    assert rest_price(quote, Side.BUY, 0, Decimal("0.01")) == Decimal("156.83")
