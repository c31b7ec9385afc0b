"""Money, quantities and the tick rules: the one place that knows what a legal US equity price is.

Prices and quantities are `Decimal` everywhere. US equities (Reg NMS rule 612, and Alpaca's order check) take
limit prices in increments of $0.01 at or above $1.00 and $0.0001 below. Rounding is always explicit and
directional: a passive price is rounded *away* from the far touch, so rounding can never make an order more
aggressive than the policy asked for.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import StrEnum

PENNY = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")
ONE_DOLLAR = Decimal("1.00")
ZERO = Decimal(0)
#: No US equity trades anywhere near this; it keeps tick arithmetic inside Decimal's default precision.
MAX_PRICE = Decimal(10) ** 12
BPS = Decimal(10_000)
#: Integer price units used by the columnar quote tape: one unit is $0.0001, so every legal price is exact.
PRICE_SCALE = 10_000


class Rounding(StrEnum):
    """Which way a price is pushed onto the tick grid."""

    DOWN = "down"  # toward lower prices (passive for a buy)
    UP = "up"  # toward higher prices (passive for a sell)
    NEAREST = "nearest"


def tick_size(price: Decimal) -> Decimal:
    """The minimum increment for a limit price of this size."""
    return PENNY if price >= ONE_DOLLAR else SUB_PENNY


def round_to_tick(price: Decimal, rounding: Rounding) -> Decimal:
    """Round `price` onto the legal grid in the given direction.

    The tick is chosen from the price itself; a price just under $1.00 rounded up lands on 1.00 exactly
    (legal in both regimes). Non-positive prices are refused: no legal order has one.
    """
    if not price.is_finite() or not ZERO < price < MAX_PRICE:
        raise ValueError(f"price must be a positive finite Decimal below {MAX_PRICE}, got {price!r}")
    tick = tick_size(price)
    mode = {Rounding.DOWN: ROUND_FLOOR, Rounding.UP: ROUND_CEILING, Rounding.NEAREST: ROUND_HALF_EVEN}[
        rounding
    ]
    rounded = price.quantize(tick, rounding=mode)
    if rounded >= ONE_DOLLAR and tick == SUB_PENNY:
        # Rounding up from below $1 may cross into the penny regime: 0.99995 -> 1.0000 is legal as 1.00.
        rounded = rounded.quantize(PENNY, rounding=mode)
    if rounded <= ZERO:
        rounded = SUB_PENNY
    return rounded


def is_legal_price(price: Decimal) -> bool:
    """True when `price` is positive and already on the legal tick grid."""
    if not price.is_finite() or not ZERO < price < MAX_PRICE:
        return False
    try:
        return price == price.quantize(tick_size(price))
    except InvalidOperation:  # more digits than the context holds: certainly not a tick multiple
        return False


def to_units(price: Decimal) -> int:
    """Exact integer units of $0.0001 for a price that is a multiple of $0.0001 (the columnar tape's type)."""
    scaled = price * PRICE_SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"price {price} is finer than $0.0001")
    return int(scaled)


def from_units(units: int) -> Decimal:
    """The Decimal price of an integer amount of $0.0001 units."""
    return Decimal(units).scaleb(-4)


def round_qty_down(qty: Decimal, whole_shares: bool) -> Decimal:
    """Round a quantity down: to whole shares for non-fractionable assets, else to 1e-9 (Alpaca's precision)."""
    step = Decimal(1) if whole_shares else Decimal("0.000000001")
    return qty.quantize(step, rounding=ROUND_DOWN)


def bps(value: Decimal, reference: Decimal) -> Decimal:
    """`value / reference` in basis points, rounded to 1/100 bp."""
    return (value / reference * BPS).quantize(PENNY, rounding=ROUND_HALF_EVEN)
