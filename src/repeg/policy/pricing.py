"""Limit prices, as pure Decimal functions of a quote and a fraction of its spread.

Every passive price is `near + fraction * (far - near)` (near = the bid for a buy, the ask for a sell), rounded
onto the legal tick grid *toward the passive side* (down for a buy, up for a sell), so rounding can never make an
order more aggressive than the policy asked. Tick rules themselves live in `repeg.domain.ticks` only.

Callers must pass a quote that `assess_quote` judged VALID: these functions trust both sides to be positive.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal

from repeg.domain.orders import Side
from repeg.domain.quote import Quote
from repeg.domain.ticks import BPS, SUB_PENNY, ZERO, Rounding, round_to_tick
from repeg.errors import SafetyLimitError

_HUNDRED = Decimal(100)
_PCT_QUANTUM = Decimal("0.0001")


def passive_rounding(side: Side) -> Rounding:
    """The rounding direction that moves a price away from the far touch."""
    return Rounding.DOWN if side is Side.BUY else Rounding.UP


def near_far(quote: Quote, side: Side) -> tuple[Decimal, Decimal]:
    """(near touch, far touch) for `side`: (bid, ask) for a buy, (ask, bid) for a sell."""
    return (quote.bid, quote.ask) if side is Side.BUY else (quote.ask, quote.bid)


def peg_price(quote: Quote, side: Side, fraction: Decimal) -> Decimal:
    """`near + fraction * (far - near)` on a legal tick, rounded toward the passive side.

    `fraction` 0 joins the near touch, 0.5 is the mid, 1 is the far touch. Guaranteed: the result is a legal
    price, never more aggressive than the unrounded price, and monotone in `fraction` (non-decreasing for a
    buy, non-increasing for a sell).
    """
    if not ZERO <= fraction <= Decimal(1):
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    near, far = near_far(quote, side)
    return round_to_tick(near + fraction * (far - near), passive_rounding(side))


def initial_limit(quote: Quote, side: Side, initial_offset: Decimal) -> Decimal:
    """The first, passive limit of a leg: `initial_offset` of the spread away from the near touch."""
    return peg_price(quote, side, initial_offset)


def repeg_limit(quote: Quote, side: Side, step: Decimal) -> Decimal:
    """The limit of a re-peg step, priced from the CURRENT quote (not the arrival quote)."""
    return peg_price(quote, side, step)


def escalation_limit(quote: Quote, side: Side, collar_bps: Decimal) -> Decimal:
    """A marketable limit bounded by a collar: the far touch plus (buy) or minus (sell) `collar_bps`.

    Rounded toward the passive side, so the limit never exceeds the collar. It is at or beyond the far touch when
    that touch is a legal price; a touch off the grid (a half-penny quote above $1, as in real NYSE data) with a
    collar narrower than the way to the next tick leaves no legal marketable price inside the collar, and the
    collar wins: the limit is then a tick short of the touch. A sell collar of 100% or more bounds nothing: the
    limit is then the lowest legal price.
    """
    _, far = near_far(quote, side)
    collar = far * collar_bps / BPS
    raw = far + collar if side is Side.BUY else max(far - collar, SUB_PENNY)
    return round_to_tick(raw, passive_rounding(side))


def collar_deviation_pct(limit_price: Decimal, arrival: Quote, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """How far `limit_price` lies from the arrival mid, in percent of that mid (unsigned, to 1e-4 %)."""
    mid = arrival.mid
    return (abs(limit_price - mid) / mid * _HUNDRED).quantize(_PCT_QUANTUM, rounding=rounding)


def check_price_collar(limit_price: Decimal, arrival: Quote, collar_pct: Decimal) -> None:
    """Refuse a limit further than `collar_pct` percent from the arrival mid.

    The test is exact (`|limit - mid| * 100 > collar_pct * mid`, no division), so a limit a fraction of a
    rounding quantum beyond the collar is refused too. Raises `SafetyLimitError` naming `price_collar_pct`, its
    value, and the refused deviation (percent, rounded up so it never reads as within the collar).
    """
    mid = arrival.mid
    if abs(limit_price - mid) * _HUNDRED > collar_pct * mid:
        deviation = collar_deviation_pct(limit_price, arrival, ROUND_CEILING)
        raise SafetyLimitError("price_collar_pct", collar_pct, deviation, symbol=arrival.symbol)
