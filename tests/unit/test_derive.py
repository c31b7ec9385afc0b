"""Deriving legs from a plan and the account: weights arithmetic, exits, rounding and skips."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from repeg.config import ExecutionConfig
from repeg.domain.account import Account, Asset, Position
from repeg.domain.orders import Side
from repeg.domain.plan import LegSpec, Plan, PlanKind, SkippedTrade, TargetWeight, TradeIntent
from repeg.errors import NotTradableError, PlanError, UnknownSymbolError
from repeg.planning.derive import FRACTION_LEFT, NO_PRICE, SOLD_BEFORE, derive_legs, portfolio_equity

D = Decimal
CONFIG = ExecutionConfig()


def account(cash: str) -> Account:
    return Account(cash=D(cash), buying_power=D(cash), equity=D(cash))


def position(symbol: str, qty: str, price: str) -> Position:
    return Position(symbol=symbol, qty=D(qty), avg_entry_price=D(price), market_value=D(qty) * D(price))


def assets(*symbols: str, whole: tuple[str, ...] = (), halted: tuple[str, ...] = ()) -> dict[str, Asset]:
    return {s: Asset(symbol=s, tradable=s not in halted, fractionable=s not in whole) for s in symbols}


def weights(**targets: str) -> Plan:
    rows = tuple(TargetWeight(symbol=s, weight=D(w)) for s, w in targets.items())
    return Plan(source="w.csv", kind=PlanKind.WEIGHTS, weights=rows)


def trades(*rows: TradeIntent) -> Plan:
    return Plan(source="t.csv", kind=PlanKind.TRADES, trades=rows)


def trade(symbol: str, side: Side, qty: str | None = None, notional: str | None = None) -> TradeIntent:
    return TradeIntent(
        symbol=symbol,
        side=side,
        qty=None if qty is None else D(qty),
        notional=None if notional is None else D(notional),
    )


def derive(
    plan: Plan,
    *,
    cash: str = "0",
    positions: tuple[Position, ...] = (),
    known: dict[str, Asset] | None = None,
    prices: dict[str, str] | None = None,
    config: ExecutionConfig = CONFIG,
) -> tuple[list[LegSpec], list[SkippedTrade]]:
    symbols = [t.symbol for t in plan.trades] + [w.symbol for w in plan.weights]
    return derive_legs(
        plan,
        account(cash),
        list(positions),
        known if known is not None else assets(*symbols),
        {s: D(p) for s, p in (prices or {}).items()},
        config=config,
    )


# --- equity -------------------------------------------------------------------------------------------------


def test_equity_values_positions_at_arrival_prices_not_broker_marks() -> None:
    held = [position("A", "10", "50")]  # broker mark $500
    assert portfolio_equity(account("1000"), held, {"A": D(60)}) == D(1600)


def test_equity_falls_back_to_broker_market_value_without_a_price() -> None:
    assert portfolio_equity(account("1000"), [position("A", "10", "50")], {}) == D(1500)


# --- weights ------------------------------------------------------------------------------------------------


def test_weights_buy_what_is_under_target() -> None:
    legs, skipped = derive(weights(A="0.5"), cash="1000", prices={"A": "10"})
    assert [(leg.symbol, leg.side, leg.qty) for leg in legs] == [("A", Side.BUY, D(50))]
    assert skipped == []


def test_weights_sell_what_is_over_target() -> None:
    held = (position("A", "100", "10"),)  # equity 1000 + 1000
    legs, _ = derive(weights(A="0.25"), cash="1000", positions=held, prices={"A": "10"})
    assert [(leg.side, leg.qty, leg.full_exit) for leg in legs] == [(Side.SELL, D(50), False)]


def test_weights_rebalance_produces_sells_and_buys_in_plan_order() -> None:
    held = (position("A", "100", "10"), position("B", "10", "20"))  # equity 800 + 1000 + 200 = 2000
    legs, _ = derive(
        weights(A="0.2", B="0.3", C="0.4"),
        cash="800",
        positions=held,
        prices={"A": "10", "B": "20", "C": "8"},
    )
    assert [(leg.index, leg.symbol, leg.side, leg.qty) for leg in legs] == [
        (0, "A", Side.SELL, D(60)),
        (1, "B", Side.BUY, D(20)),
        (2, "C", Side.BUY, D(100)),
    ]


def test_weight_zero_sells_the_exact_position_as_a_full_exit() -> None:
    # More digits than 1e-9 rounding keeps: the exit sends the position exactly, never rounded.
    held = (position("A", "12.345678912345", "10"),)
    legs, _ = derive(weights(A="0"), positions=held, prices={"A": "10"})
    assert [(leg.side, leg.qty, leg.full_exit) for leg in legs] == [(Side.SELL, D("12.345678912345"), True)]


def test_weight_zero_sells_the_whole_shares_of_a_fractional_non_fractionable_position() -> None:
    # 7.5 shares of a non-fractionable asset: a sell of 7.5 is refused by the broker (the simulator, and the
    # Alpaca adapter before sending), so the exit sold nothing. Its whole shares can be sold: 7, not an exact exit.
    held = (position("A", "7.5", "10"),)
    legs, _ = derive(weights(A="0"), positions=held, known=assets("A", whole=("A",)), prices={"A": "10"})
    assert [(leg.side, leg.qty, leg.full_exit) for leg in legs] == [(Side.SELL, D(7), False)]


def test_weight_zero_exit_of_a_fractional_non_fractionable_position_reports_the_fraction_left_held() -> None:
    # The exit sells 7 of 7.5 shares: the 0.5 it cannot send stays held, and is reported, not left unsaid.
    held = (position("A", "7.5", "10"),)
    _, skipped = derive(weights(A="0"), positions=held, known=assets("A", whole=("A",)), prices={"A": "10"})
    assert skipped == [SkippedTrade(symbol="A", side=Side.SELL, qty=D("0.5"), reason=FRACTION_LEFT)]


def test_weight_zero_on_under_one_share_of_a_non_fractionable_asset_is_skipped() -> None:
    held = (position("A", "0.5", "10"),)
    legs, skipped = derive(
        weights(A="0"), positions=held, known=assets("A", whole=("A",)), prices={"A": "10"}
    )
    assert legs == []
    assert [(s.symbol, s.reason) for s in skipped] == [("A", "rounds to zero whole shares")]


def test_weight_zero_on_a_short_buys_it_back_exactly() -> None:
    legs, _ = derive(weights(A="0"), positions=(position("A", "-7", "10"),), prices={"A": "10"})
    assert [(leg.side, leg.qty, leg.full_exit) for leg in legs] == [(Side.BUY, D(7), True)]


def test_weight_zero_without_a_position_trades_nothing() -> None:
    assert derive(weights(A="0"), cash="100", prices={"A": "10"}) == ([], [])


def test_held_symbol_absent_from_weights_is_left_untouched() -> None:
    held = (position("A", "100", "10"), position("Z", "5", "100"))
    legs, skipped = derive(weights(A="0.5"), cash="0", positions=held, prices={"A": "10", "Z": "100"})
    assert [leg.symbol for leg in legs] == ["A"]  # equity 1500, A at 1000 -> sell 25
    assert legs[0].qty == D(25)
    assert skipped == []


def test_symbol_already_at_target_trades_nothing() -> None:
    held = (position("A", "50", "10"),)
    assert derive(weights(A="0.5"), cash="500", positions=held, prices={"A": "10"}) == ([], [])


def test_non_fractionable_buy_rounds_down_to_whole_shares() -> None:
    legs, _ = derive(weights(A="1"), cash="1000", known=assets("A", whole=("A",)), prices={"A": "30"})
    assert legs[0].qty == D(33)
    assert legs[0].whole_shares


def test_fractionable_buy_rounds_down_to_nine_decimals() -> None:
    legs, _ = derive(weights(A="1"), cash="1000", prices={"A": "30"})
    assert legs[0].qty == D("33.333333333")
    assert not legs[0].whole_shares


def test_non_fractionable_sell_rounds_down_and_never_sells_more_than_asked() -> None:
    held = (position("A", "10", "30"),)  # equity 300 -> target 0.5 = 150, sell 150 = 5 shares exactly
    legs, _ = derive(weights(A="0.49"), positions=held, known=assets("A", whole=("A",)), prices={"A": "30"})
    assert legs[0].qty == D(5)  # 153 dollars = 5.1 shares, rounded down


def test_weight_trade_under_min_notional_is_skipped_and_reported() -> None:
    held = (position("A", "99.95", "10"),)  # 999.5 held, target 1000
    legs, skipped = derive(weights(A="1"), cash="0.5", positions=held, prices={"A": "10"})
    assert legs == []
    assert skipped == [
        SkippedTrade(symbol="A", side=Side.BUY, qty=D("0.05"), reason="notional 0.50 is below min_notional 1")
    ]


def test_min_notional_skip_reason_never_rounds_the_notional_up_to_the_minimum() -> None:
    # 0.00999 shares at $100 is $0.999: the reason must not read "notional 1.00 is below min_notional 1".
    _, skipped = derive(trades(trade("A", Side.BUY, "0.00999")), prices={"A": "100"})
    assert skipped[0].reason == "notional 0.99 is below min_notional 1"


def test_weight_trade_rounding_to_zero_whole_shares_is_skipped() -> None:
    _, skipped = derive(weights(A="1"), cash="20", known=assets("A", whole=("A",)), prices={"A": "30"})
    assert skipped[0].reason == "rounds to zero whole shares"


def test_weight_symbol_without_arrival_price_is_skipped() -> None:
    legs, skipped = derive(weights(A="0.5", B="0.5"), cash="1000", prices={"A": "10"})
    assert [leg.symbol for leg in legs] == ["A"]
    assert skipped == [SkippedTrade(symbol="B", side=Side.BUY, qty=D(0), reason=NO_PRICE)]


def test_weight_symbol_without_arrival_price_reports_the_side_its_target_needs() -> None:
    # $100 of A held in a $100,100 account, target 50%: a buy of ~$50,000, not a sell, was skipped.
    held = (position("A", "1", "100"),)
    _, skipped = derive(weights(A="0.5"), cash="100000", positions=held, prices={})
    assert skipped == [SkippedTrade(symbol="A", side=Side.BUY, qty=D(0), reason=NO_PRICE)]


def test_weight_zero_exit_without_arrival_price_reports_the_position_it_did_not_sell() -> None:
    _, skipped = derive(weights(A="0"), cash="1000", positions=(position("A", "7.5", "10"),), prices={})
    assert skipped == [SkippedTrade(symbol="A", side=Side.SELL, qty=D("7.5"), reason=NO_PRICE)]


def test_weight_zero_exit_without_arrival_price_reports_the_whole_shares_a_non_fractionable_exit_sells() -> (
    None
):
    # Priced, the exit of 7.5 non-fractionable shares sells 7: the skip says what was not sold, 7, not 7.5, and
    # the 0.5 no exit could sell is reported left held, as it is when priced.
    held = (position("A", "7.5", "10"),)
    _, skipped = derive(weights(A="0"), positions=held, known=assets("A", whole=("A",)), prices={})
    assert [(s.side, s.qty, s.reason) for s in skipped] == [
        (Side.SELL, D(7), NO_PRICE),
        (Side.SELL, D("0.5"), FRACTION_LEFT),
    ]


# --- trade lists --------------------------------------------------------------------------------------------


def test_trade_list_qty_is_taken_as_written() -> None:
    legs, _ = derive(trades(trade("A", Side.BUY, qty="3")), prices={"A": "10"})
    assert [(leg.index, leg.symbol, leg.side, leg.qty, leg.notional) for leg in legs] == [
        (0, "A", Side.BUY, D(3), None)
    ]


def test_trade_list_sell_of_the_whole_position_is_a_full_exit() -> None:
    held = (position("A", "4.5", "10"),)
    legs, _ = derive(trades(trade("A", Side.SELL, qty="4.5")), positions=held, prices={"A": "10"})
    assert legs[0].full_exit


def test_trade_list_sell_of_a_fractional_non_fractionable_position_sells_its_whole_shares() -> None:
    held = (position("A", "4.5", "10"),)
    legs, _ = derive(
        trades(trade("A", Side.SELL, qty="4.5")),
        positions=held,
        known=assets("A", whole=("A",)),
        prices={"A": "10"},
    )
    assert [(leg.qty, leg.full_exit) for leg in legs] == [(D(4), False)]


def test_trade_list_sell_of_a_fractional_non_fractionable_position_reports_the_fraction_left_held() -> None:
    held = (position("A", "4.5", "10"),)
    _, skipped = derive(
        trades(trade("A", Side.SELL, qty="4.5")),
        positions=held,
        known=assets("A", whole=("A",)),
        prices={"A": "10"},
    )
    assert skipped == [SkippedTrade(symbol="A", side=Side.SELL, qty=D("0.5"), reason=FRACTION_LEFT)]


def test_trade_list_partial_sell_is_not_a_full_exit() -> None:
    held = (position("A", "10", "10"),)
    legs, _ = derive(trades(trade("A", Side.SELL, qty="4")), positions=held, prices={"A": "10"})
    assert not legs[0].full_exit


def test_trade_list_fractional_qty_of_whole_share_asset_rounds_down() -> None:
    legs, _ = derive(
        trades(trade("A", Side.BUY, qty="2.7")), known=assets("A", whole=("A",)), prices={"A": "10"}
    )
    assert legs[0].qty == D(2)


def test_trade_list_notional_leg_stays_notional() -> None:
    legs, _ = derive(trades(trade("A", Side.BUY, notional="250")), prices={"A": "10"})
    assert (legs[0].qty, legs[0].notional) == (None, D(250))


def test_trade_list_notional_too_small_for_one_whole_share_is_skipped() -> None:
    _, skipped = derive(
        trades(trade("A", Side.BUY, notional="25")), known=assets("A", whole=("A",)), prices={"A": "30"}
    )
    assert skipped[0].reason == "rounds to zero whole shares"


def test_trade_list_under_min_notional_is_skipped_and_leg_indexes_stay_dense() -> None:
    plan = trades(
        trade("A", Side.BUY, qty="1"), trade("B", Side.BUY, qty="0.01"), trade("C", Side.SELL, qty="1")
    )
    config = ExecutionConfig(min_notional=D(5))
    legs, skipped = derive(plan, prices={"A": "10", "B": "10", "C": "10"}, config=config)
    assert [(leg.index, leg.symbol) for leg in legs] == [(0, "A"), (1, "C")]
    assert [(s.symbol, s.qty) for s in skipped] == [("B", D("0.01"))]


def test_a_whole_share_notional_trade_is_held_to_min_notional_by_what_it_buys() -> None:
    # $150 of a $90 non-fractionable stock buys one share, $90: under a $100 minimum, though $150 is not.
    legs, skipped = derive(
        trades(trade("A", Side.BUY, notional="150")),
        known=assets("A", whole=("A",)),
        prices={"A": "90"},
        config=ExecutionConfig(min_notional=D(100)),
    )
    assert legs == []
    assert skipped[0].reason == "notional 90.00 is below min_notional 100"


def test_a_fractional_notional_trade_exactly_at_min_notional_is_kept() -> None:
    # Its quantity, rounded down to 1e-9, is worth a hair under $1: the dollars asked for count, not that.
    legs, _ = derive(trades(trade("A", Side.BUY, notional="1")), prices={"A": "3"})
    assert [leg.notional for leg in legs] == [D(1)]


def test_a_skipped_notional_trade_reports_the_dollars_it_asked_for() -> None:
    # It never had a quantity: reported as "0" shares, the $500 the user asked for was nowhere in the result.
    _, skipped = derive(trades(trade("A", Side.BUY, notional="500")))
    assert [(s.reason, s.qty, s.notional) for s in skipped] == [(NO_PRICE, D(0), D(500))]


def test_a_skipped_quantity_trade_has_no_notional() -> None:
    _, skipped = derive(trades(trade("A", Side.BUY, qty="1")))
    assert skipped[0].notional is None
    assert "notional" not in skipped[0].model_dump_json()  # journaled exactly as before


def test_trade_list_symbol_without_arrival_price_is_skipped() -> None:
    _, skipped = derive(trades(trade("A", Side.BUY, qty="1")))
    assert skipped[0].reason == NO_PRICE


# --- broker facts -------------------------------------------------------------------------------------------


def test_unknown_symbol_is_refused() -> None:
    with pytest.raises(UnknownSymbolError, match=r"t\.csv, field 'symbol' = 'ZZZ': unknown to the broker"):
        derive(trades(trade("ZZZ", Side.BUY, qty="1")), known={}, prices={"ZZZ": "1"})


def test_non_tradable_symbol_is_refused_even_when_no_trade_is_needed() -> None:
    with pytest.raises(NotTradableError) as info:
        derive(weights(A="0"), known=assets("A", halted=("A",)), prices={"A": "10"})
    assert info.value.symbol == "A"


def test_trade_list_notional_sell_is_sized_to_shares_at_the_arrival_price() -> None:
    # The engine sizes notional legs only in the buy phase: a sell left as a notional was never sent.
    held = (position("A", "100", "10"),)
    legs, skipped = derive(trades(trade("A", Side.SELL, notional="255")), positions=held, prices={"A": "10"})
    assert [(leg.side, leg.qty, leg.notional) for leg in legs] == [(Side.SELL, D("25.5"), None)]
    assert skipped == []


def test_trade_list_notional_sell_of_a_whole_share_asset_rounds_down() -> None:
    held = (position("A", "100", "10"),)
    legs, _ = derive(
        trades(trade("A", Side.SELL, notional="259.99")),
        positions=held,
        known=assets("A", whole=("A",)),
        prices={"A": "10"},
    )
    assert (legs[0].qty, legs[0].notional) == (D(25), None)


def test_a_notional_sell_worth_more_than_the_long_position_sells_the_exact_position() -> None:
    # $1005 of a $1000 holding: sized to 10.05 shares, more than held, the broker refused the whole sell and
    # nothing was sold. The dollars bound the sale; the holding bounds it too: a full exit.
    held = (position("A", "10", "100"),)
    legs, _ = derive(trades(trade("A", Side.SELL, notional="1005")), positions=held, prices={"A": "100"})
    assert [(leg.qty, leg.full_exit) for leg in legs] == [(D(10), True)]


def test_a_notional_sell_worth_more_than_a_position_finer_than_1e_9_shares_sells_it_exactly() -> None:
    # Capped at the position rounded down to 1e-9 (23253a6b), it sold 10.123456789 of 10.1234567891: not the
    # exact position, not a full exit, as the module's rules promise for a fractionable asset.
    held = (position("A", "10.1234567891", "100"),)
    legs, _ = derive(trades(trade("A", Side.SELL, notional="5000")), positions=held, prices={"A": "100"})
    assert [(leg.qty, leg.full_exit) for leg in legs] == [(D("10.1234567891"), True)]


def test_a_notional_sell_capped_at_a_fractional_non_fractionable_position_sells_its_whole_shares() -> None:
    held = (position("A", "10.5", "100"),)
    legs, _ = derive(
        trades(trade("A", Side.SELL, notional="5000")),
        positions=held,
        known=assets("A", whole=("A",)),
        prices={"A": "100"},
    )
    assert [(leg.qty, leg.full_exit) for leg in legs] == [(D(10), False)]


def test_a_notional_sell_capped_at_a_fractional_non_fractionable_position_reports_the_fraction_left() -> None:
    held = (position("A", "10.5", "100"),)
    _, skipped = derive(
        trades(trade("A", Side.SELL, notional="5000")),
        positions=held,
        known=assets("A", whole=("A",)),
        prices={"A": "100"},
    )
    assert skipped == [SkippedTrade(symbol="A", side=Side.SELL, qty=D("0.5"), reason=FRACTION_LEFT)]


def test_a_notional_sell_under_a_fractional_non_fractionable_position_leaves_no_fraction_to_report() -> None:
    # $1000 of a 10.5-share holding at $100 asks for 10 shares, not the whole position: nothing is left unsaid.
    held = (position("A", "10.5", "100"),)
    legs, skipped = derive(
        trades(trade("A", Side.SELL, notional="1000")),
        positions=held,
        known=assets("A", whole=("A",)),
        prices={"A": "100"},
    )
    assert ([leg.qty for leg in legs], skipped) == ([D(10)], [])


def test_a_notional_sell_capped_at_a_tiny_position_is_skipped_under_min_notional() -> None:
    # It sells the $0.50 held, not the $5 asked: the minimum applies to what is sold.
    held = (position("A", "0.005", "100"),)
    legs, skipped = derive(trades(trade("A", Side.SELL, notional="5")), positions=held, prices={"A": "100"})
    assert legs == []
    assert skipped[0].reason == "notional 0.50 is below min_notional 1"


def test_a_notional_sell_without_a_long_position_is_sized_as_written() -> None:
    legs, _ = derive(trades(trade("A", Side.SELL, notional="1005")), prices={"A": "100"})
    assert [(leg.qty, leg.full_exit) for leg in legs] == [(D("10.05"), False)]


# --- plans built in Python (the API takes a `Plan`, not only a file) ----------------------------------------


def test_weights_plan_summing_over_one_is_refused_when_built_directly() -> None:
    # Only the file parser checked the sum: a Plan built in Python bought 160% of equity.
    with pytest.raises(ValidationError, match=r"weights sum to 1\.6, more than 1"):
        weights(A="0.8", B="0.8")


def test_weights_plan_naming_a_symbol_twice_is_refused_when_built_directly() -> None:
    # Each row would be derived from the same holding: the buy was sent twice.
    rows = (TargetWeight(symbol="A", weight=D("0.3")), TargetWeight(symbol="A", weight=D("0.3")))
    with pytest.raises(ValidationError, match="symbol A appears twice"):
        Plan(source="w", kind=PlanKind.WEIGHTS, weights=rows)


@pytest.mark.parametrize("field", ["qty", "notional"])
def test_a_trade_amount_beyond_the_largest_amount_is_refused_when_built_directly(field: str) -> None:
    # Only the file parser capped it: 1e19 shares built in Python crashed derive with decimal.InvalidOperation.
    with pytest.raises(ValidationError, match="less than or equal to 1000000000000"):
        trade("A", Side.BUY, **{field: "1e19"})


def test_trade_list_may_repeat_a_symbol_when_built_directly() -> None:
    # A basket (run_basket) holds many orders of one symbol; only plan files refuse repeats.
    plan = trades(trade("A", Side.BUY, qty="1"), trade("A", Side.SELL, qty="1"))
    assert len(plan.trades) == 2


def test_weights_against_a_non_positive_equity_are_refused() -> None:
    # Equity -100: a 0.5 target of A (10 held at 10) sold 15 shares, 5 more than held, opening a short.
    held = (position("A", "10", "10"),)
    with pytest.raises(PlanError, match=r"w\.csv: equity -100 is not positive"):
        derive(weights(A="0.5"), cash="-200", positions=held, prices={"A": "10"})


def test_a_weight_trade_beyond_the_largest_amount_is_refused_as_bad_input_not_a_crash() -> None:
    # Cash 1e30 (a simulated account's setting) sized a 4e26-share buy: rounding it to 1e-9 shares needs more
    # than Decimal's 28 digits, and `repeg run` ended with a decimal.InvalidOperation traceback, exit 1.
    with pytest.raises(PlanError, match=r"w\.csv: A: the trade to weight 0\.12 is .* shares, more than"):
        derive(weights(A="0.12"), cash="1e30", prices={"A": "300"})


def test_a_weight_trade_of_the_largest_amount_is_derived() -> None:
    legs, _ = derive(weights(A="1"), cash="1e12", prices={"A": "1"})
    assert legs[0].qty == D(10) ** 12


# --- a trade list repeating a symbol (built in Python: a plan file refuses it) --------------------------------


def test_repeated_notional_sells_together_never_sell_more_than_the_long_position() -> None:
    # Each row was capped at the whole holding: $600 + $600 of a $1000 holding sold 6 + 10 shares, and the
    # broker refused the second sell (only 4 left to sell): it sold nothing. The second sells the 4 left.
    held = (position("A", "10", "100"),)
    plan = trades(trade("A", Side.SELL, notional="600"), trade("A", Side.SELL, notional="600"))
    legs, _ = derive(plan, positions=held, prices={"A": "100"})
    assert [(leg.qty, leg.full_exit) for leg in legs] == [(D(6), False), (D(4), True)]


def test_a_sell_after_rows_that_sell_the_whole_position_is_no_full_exit() -> None:
    # Both rows of 10 were flagged full exits of the same 10 shares; the second is taken as written.
    held = (position("A", "10", "100"),)
    plan = trades(trade("A", Side.SELL, qty="10"), trade("A", Side.SELL, qty="10"))
    legs, _ = derive(plan, positions=held, prices={"A": "100"})
    assert [(leg.qty, leg.full_exit) for leg in legs] == [(D(10), True), (D(10), False)]


def test_repeated_sells_complete_an_exit_with_the_rest_of_the_position() -> None:
    held = (position("A", "10", "100"),)
    plan = trades(trade("A", Side.SELL, qty="4"), trade("A", Side.SELL, qty="6"))
    legs, _ = derive(plan, positions=held, prices={"A": "100"})
    assert [(leg.qty, leg.full_exit) for leg in legs] == [(D(4), False), (D(6), True)]


def test_a_skipped_sell_leaves_the_position_to_the_next_row_of_its_symbol() -> None:
    # $0.50 is under min_notional: it sells nothing, so the next row still meets the whole holding.
    held = (position("A", "10", "100"),)
    plan = trades(trade("A", Side.SELL, qty="0.005"), trade("A", Side.SELL, notional="5000"))
    legs, skipped = derive(plan, positions=held, prices={"A": "100"})
    assert [(leg.qty, leg.full_exit) for leg in legs] == [(D(10), True)]
    assert [s.qty for s in skipped] == [D("0.005")]


def test_a_notional_sell_after_rows_that_sell_the_whole_position_is_skipped_and_reported() -> None:
    # Capped at the whole holding again, it sold 10 more of the 10 the first row sold: the broker refused it.
    held = (position("A", "10", "100"),)
    plan = trades(trade("A", Side.SELL, notional="5000"), trade("A", Side.SELL, notional="300"))
    legs, skipped = derive(plan, positions=held, prices={"A": "100"})
    assert [(leg.qty, leg.full_exit) for leg in legs] == [(D(10), True)]
    assert [(s.qty, s.notional, s.reason) for s in skipped] == [(D(0), D(300), SOLD_BEFORE)]
