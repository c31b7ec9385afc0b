"""Buy sizing and scaling: pure arithmetic on specs, asks and buying power."""

from __future__ import annotations

from decimal import Decimal

from repeg.domain.orders import Side
from repeg.domain.plan import LegSpec
from repeg.engine.phases import size_buys

ASKS = {"AAA": Decimal("10.00"), "BBB": Decimal("20.00")}


def qty_leg(index: int, symbol: str, qty: str, *, whole: bool = False) -> LegSpec:
    return LegSpec(index=index, symbol=symbol, side=Side.BUY, qty=Decimal(qty), whole_shares=whole)


def notional_leg(index: int, symbol: str, notional: str, *, whole: bool = False) -> LegSpec:
    return LegSpec(index=index, symbol=symbol, side=Side.BUY, notional=Decimal(notional), whole_shares=whole)


def test_buys_that_fit_are_not_scaled() -> None:
    sizing = size_buys([qty_leg(0, "AAA", "10")], ASKS, Decimal(1000), Decimal(50))
    assert sizing.scale == Decimal(1)
    assert sizing.legs[0].qty == Decimal(10)
    assert sizing.estimated_cost == Decimal("100.5")


def test_notional_legs_are_sized_from_the_ask() -> None:
    sizing = size_buys(
        [notional_leg(0, "BBB", "1000", whole=True), notional_leg(1, "AAA", "25")],
        ASKS,
        Decimal(10_000),
        Decimal(0),
    )
    assert [leg.qty for leg in sizing.legs] == [Decimal(50), Decimal("2.5")]
    assert all(leg.notional is None for leg in sizing.legs)


def test_a_shortfall_scales_every_buy_by_one_factor() -> None:
    sizing = size_buys(
        [qty_leg(0, "AAA", "100"), qty_leg(1, "BBB", "100", whole=True)], ASKS, Decimal(1500), Decimal(0)
    )
    assert sizing.scale == Decimal("0.5")
    assert [leg.qty for leg in sizing.legs] == [Decimal("50.000000000"), Decimal(50)]


def test_the_scaled_cost_never_exceeds_the_buying_power() -> None:
    specs = [qty_leg(0, "AAA", "333", whole=True), qty_leg(1, "BBB", "77")]
    sizing = size_buys(specs, ASKS, Decimal("4321.09"), Decimal(50))
    cost = sum(leg.qty * ASKS[leg.symbol] * Decimal("1.005") for leg in sizing.legs if leg.qty is not None)
    assert cost <= Decimal("4321.09")
    # ... and is not met by dropping buys: both legs stay, scaled by one factor just under the need.
    assert [leg.index for leg in sizing.legs] == [0, 1]
    assert Decimal("0.8") < sizing.scale < Decimal(1)


def test_no_buying_power_drops_every_buy() -> None:
    sizing = size_buys([qty_leg(0, "AAA", "10")], ASKS, Decimal(0), Decimal(0))
    assert sizing.scale == Decimal(0)
    assert not sizing.legs
    assert "scaled to zero" in sizing.dropped[0][1]


def test_a_notional_leg_without_a_valid_quote_is_dropped() -> None:
    sizing = size_buys([notional_leg(0, "ZZZ", "100")], ASKS, Decimal(1000), Decimal(0))
    assert sizing.dropped[0][1] == "no valid quote to size the notional"


def test_a_notional_smaller_than_one_whole_share_is_dropped() -> None:
    sizing = size_buys([notional_leg(0, "BBB", "5", whole=True)], ASKS, Decimal(1000), Decimal(0))
    assert sizing.dropped[0][1] == "sized to zero"


def test_a_quantity_leg_without_a_valid_quote_is_dropped_as_its_cost_cannot_be_bounded() -> None:
    # AAA alone uses the whole buying power: sending ZZZ too (its cost unknown) would exceed it.
    sizing = size_buys([qty_leg(0, "AAA", "100"), qty_leg(1, "ZZZ", "10")], ASKS, Decimal(1000), Decimal(0))
    assert [(leg.index, leg.qty) for leg in sizing.legs] == [(0, Decimal(100))]
    assert [(spec.index, reason) for spec, reason in sizing.dropped] == [
        (1, "no valid quote to bound its cost by the buying power")
    ]


def test_a_buy_scaled_below_min_notional_is_dropped() -> None:
    specs = [qty_leg(0, "AAA", "1000"), qty_leg(1, "BBB", "0.1")]  # 10000 + 2 against 1000: scale 0.099980
    sizing = size_buys(specs, ASKS, Decimal(1000), Decimal(0), min_notional=Decimal(1))
    assert [leg.index for leg in sizing.legs] == [0]
    ((spec, reason),) = sizing.dropped
    assert spec.index == 1
    assert reason == "scaled to a notional of 0.19, below min_notional 1 (scale 0.099980)"  # $0.19996, cut


def test_a_scaled_buy_drop_reason_never_rounds_the_notional_up_to_the_minimum() -> None:
    specs = [qty_leg(0, "AAA", "1000"), qty_leg(1, "BBB", "0.05")]  # 10001 against 9990.999: scale 0.999
    sizing = size_buys(specs, ASKS, Decimal("9990.999"), Decimal(0), min_notional=Decimal(1))
    ((_, reason),) = sizing.dropped  # BBB scaled to 0.04995 shares, $0.999
    assert reason == "scaled to a notional of 0.99, below min_notional 1 (scale 0.999000)"


def test_an_unscaled_buy_is_not_checked_again_against_min_notional() -> None:
    # derive checked the trade at planning; only a shortfall's scaling can bring it under the minimum here.
    sizing = size_buys([qty_leg(0, "BBB", "0.01")], ASKS, Decimal(1000), Decimal(0), min_notional=Decimal(1))
    assert [leg.qty for leg in sizing.legs] == [Decimal("0.01")]


def test_a_scaled_short_cover_is_no_longer_marked_a_full_exit() -> None:
    # full_exit means "the exact position quantity, never rounded"; a scaled leg covers only part of it.
    cover = LegSpec(index=0, symbol="AAA", side=Side.BUY, qty=Decimal(100), full_exit=True)
    sizing = size_buys([cover], ASKS, Decimal(500), Decimal(0))
    assert (sizing.legs[0].qty, sizing.legs[0].full_exit) == (Decimal("50.000000000"), False)


def test_an_unscaled_short_cover_stays_a_full_exit() -> None:
    cover = LegSpec(index=0, symbol="AAA", side=Side.BUY, qty=Decimal(100), full_exit=True)
    assert size_buys([cover], ASKS, Decimal(5000), Decimal(0)).legs[0].full_exit


def test_the_scale_is_rounded_down_so_the_scaled_cost_stays_within_the_buying_power() -> None:
    # 2 / 3 = 0.6666666...: rounded to the nearest (0.666667) the 0.3 shares would cost 2.000001 > 2.
    sizing = size_buys([qty_leg(0, "AAA", "0.3")], ASKS, Decimal(2), Decimal(0))
    assert sizing.scale == Decimal("0.666666")
    assert sizing.legs[0].qty * ASKS["AAA"] <= Decimal(2)


def test_a_scaled_whole_share_buy_is_rounded_down_to_whole_shares_and_stays_whole_share() -> None:
    sizing = size_buys([qty_leg(0, "AAA", "7", whole=True)], ASKS, Decimal(35), Decimal(0))
    assert sizing.scale == Decimal("0.5")
    (leg,) = sizing.legs
    assert leg.qty == Decimal(3)
    assert leg.whole_shares


def test_a_buy_scaled_to_exactly_min_notional_is_kept() -> None:
    specs = [qty_leg(0, "AAA", "100"), qty_leg(1, "BBB", "0.1")]  # 1002 against 501: scale 0.5, BBB $1.00
    sizing = size_buys(specs, ASKS, Decimal(501), Decimal(0), min_notional=Decimal(1))
    assert [(leg.index, leg.qty) for leg in sizing.legs] == [(0, Decimal(50)), (1, Decimal("0.05"))]
    assert not sizing.dropped


def test_no_buying_power_gives_a_scale_of_exactly_zero_in_the_drop_reason() -> None:
    sizing = size_buys([qty_leg(0, "AAA", "10")], ASKS, Decimal(0), Decimal(0))
    assert sizing.dropped[0][1] == "scaled to zero (scale 0)"


def test_a_whole_share_notional_buy_sized_at_the_ask_under_min_notional_is_dropped() -> None:
    # $130 of a non-fractionable stock: 2 shares ($129.98) at the $64.99 arrival mid passed a $100 minimum, but
    # at the $65.01 ask it buys 1 share, $65.01: under the minimum, unscaled, it must not be sent.
    sizing = size_buys(
        [notional_leg(0, "CCC", "130", whole=True)],
        {"CCC": Decimal("65.01")},
        Decimal(10_000),
        Decimal(0),
        min_notional=Decimal(100),
    )
    assert sizing.legs == ()
    assert [reason for _, reason in sizing.dropped] == [
        "sized to a notional of 65.01, below min_notional 100"
    ]


def test_a_fractional_notional_buy_exactly_at_min_notional_is_kept_when_sized() -> None:
    # Rounded down to 1e-9 shares it costs a hair under $1 at the ask: the dollars asked for count, as at planning.
    sizing = size_buys(
        [notional_leg(0, "AAA", "1")], {"AAA": Decimal(3)}, Decimal(100), Decimal(0), min_notional=Decimal(1)
    )
    assert [leg.qty for leg in sizing.legs] == [Decimal("0.333333333")]
