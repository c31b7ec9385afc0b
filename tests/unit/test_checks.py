"""Safety rails: the per-order and per-run notional limits refuse a plan before anything is sent."""

from __future__ import annotations

from decimal import Decimal

import pytest

from repeg.config import ExecutionConfig
from repeg.domain.orders import Side
from repeg.domain.plan import LegSpec
from repeg.errors import SafetyLimitError
from repeg.planning.checks import check_safety, leg_notional

D = Decimal
PRICES = {"A": D(10), "B": D(100)}


def qty_leg(index: int, symbol: str, qty: str, side: Side = Side.BUY) -> LegSpec:
    return LegSpec(index=index, symbol=symbol, side=side, qty=D(qty))


def test_quantity_leg_notional_is_qty_times_arrival_price() -> None:
    assert leg_notional(qty_leg(0, "A", "2.5"), PRICES) == D(25)


def test_notional_leg_counts_its_stated_dollars() -> None:
    leg = LegSpec(index=0, symbol="B", side=Side.BUY, notional=D(123))
    assert leg_notional(leg, PRICES) == D(123)


def test_without_limits_every_plan_passes_and_the_total_is_returned() -> None:
    legs = [qty_leg(0, "A", "5", Side.SELL), qty_leg(1, "B", "1")]
    assert check_safety(legs, PRICES, ExecutionConfig()) == D(150)


def test_order_over_max_order_notional_is_refused_naming_symbol_limit_and_value() -> None:
    config = ExecutionConfig(max_order_notional=D(500))
    with pytest.raises(SafetyLimitError) as info:
        check_safety([qty_leg(0, "A", "1"), qty_leg(1, "B", "6")], PRICES, config)
    error = info.value
    assert (error.limit, error.limit_value, error.value, error.symbol) == (
        "max_order_notional",
        D(500),
        D(600),
        "B",
    )
    assert str(error) == "B: max_order_notional is 500, refused value 600"


def test_order_exactly_at_max_order_notional_passes() -> None:
    assert check_safety([qty_leg(0, "B", "5")], PRICES, ExecutionConfig(max_order_notional=D(500))) == D(500)


def test_run_over_max_run_notional_is_refused_with_the_total() -> None:
    legs = [qty_leg(0, "A", "30", Side.SELL), qty_leg(1, "B", "1")]  # sells count too: 300 + 100
    with pytest.raises(SafetyLimitError) as info:
        check_safety(legs, PRICES, ExecutionConfig(max_run_notional=D(399)))
    assert (info.value.limit, info.value.value, info.value.symbol) == ("max_run_notional", D(400), None)


def test_run_exactly_at_max_run_notional_passes() -> None:
    assert check_safety([qty_leg(0, "B", "4")], PRICES, ExecutionConfig(max_run_notional=D(400))) == D(400)
