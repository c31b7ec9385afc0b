"""Execution quality, from legs' actual fills against the quote at arrival. Pure Decimal arithmetic.

Conventions: a cost is positive when the fill is worse than the arrival mid (above it for a buy, below it for a
sell). One "half-spread" is half the arrival quote's spread: crossing at arrival costs exactly 1 half-spread,
filling at the mid 0, joining the near touch -1. The share of the half-spread saved is `1 - cost in
half-spreads`, so 1 means the mid was achieved and 0 that the run did no better than crossing at arrival.

Only a two-sided, uncrossed arrival quote (0 < bid < ask) is a benchmark, and only one the engine priced from. A
leg sent to market for want of a valid quote (`on_no_quote = "market"`) has no arrival mid and no cost, and stays
out of the cost aggregates: the engine records no quote with it, and a journal written before it did so holds the
quote in force, which the engine had judged invalid (zero, one-sided, crossed, stale or too wide).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, InvalidOperation, Overflow

from pydantic import BaseModel, ConfigDict

from repeg.domain.leg import LegState
from repeg.domain.lifecycle import LegStatus
from repeg.domain.orders import OrderType
from repeg.domain.quote import Quote
from repeg.domain.ticks import BPS, ZERO, bps

_RATIO = Decimal("0.0001")
_TWO = Decimal(2)

#: The arithmetic context of every report figure (`repeg.report.result.build_result`) and of a run started through
#: the Python API (`repeg.api.execute_async`), whatever the caller's: `decimal.getcontext()` belongs to the program
#: using the API, which may have changed it for its own sums. Python's default, fixed: 28 significant digits,
#: rounded half-even (so a leg's average fill price is its quotient to 28 digits, half-even; the tables show it to
#: 4 places, half-even, see `repeg.report.text`).
DECIMAL_CONTEXT = Context(
    prec=28,
    rounding=ROUND_HALF_EVEN,
    Emin=-999999,
    Emax=999999,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)


class QualitySummary(BaseModel):
    """Aggregates of a run's legs, None where undefined. The costs cover the legs that filled anything and have a
    benchmark arrival quote (a leg that filled nothing adds no cost); the fill rate covers every leg sent with a
    quantity; the time to fill, the legs that filled completely."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Notional-weighted cost versus the arrival mid, in basis points (signed; positive = paid more).
    cost_bps: Decimal | None = None
    #: Cost in units of the arrival half-spread, in dollars over the legs: what the fills paid above the arrival
    #: mids, over what crossing at arrival would have paid (each leg's half-spread x its filled quantity, the
    #: quantity whose price the broker reported, as in its average). A leg weighs by its quantity times its
    #: half-spread, so wide-spread legs count more than in a per-leg average.
    #: Unrounded (to `DECIMAL_CONTEXT`'s 28 digits), as `half_spread_saved`: the tables round each once.
    cost_half_spreads: Decimal | None = None
    #: 1 - cost_half_spreads: the share of the half-spread saved versus crossing at arrival.
    half_spread_saved: Decimal | None = None
    #: Filled quantity by limit orders sent before escalation, over the requested quantity of legs that were sent.
    fill_rate_before_escalation: Decimal | None = None
    #: Mean seconds from a filled leg's first submission to its last fill.
    mean_time_to_fill_s: float | None = None


def benchmark_quote(leg: LegState) -> Quote | None:
    """The leg's arrival quote when it can serve as a benchmark (0 < bid < ask, and not the invalid quote in force
    when its first order went to market for want of a valid one), else None."""
    quote = leg.arrival_quote
    if quote is None or quote.bid <= ZERO or quote.ask <= quote.bid or _sent_without_quote(leg):
        return None
    return quote


def _sent_without_quote(leg: LegState) -> bool:
    """True when the leg's first order was a market order not sent by escalation: the engine sends one only when
    it has no valid quote (`on_no_quote = "market"`); with one, the first order is always a limit."""
    first = leg.orders[0] if leg.orders else None
    return first is not None and first.order_type is OrderType.MARKET and not first.escalation


def leg_cost_bps(leg: LegState) -> Decimal | None:
    """The leg's signed cost versus its arrival mid, in bps; None before any fill or without a usable arrival
    quote."""
    avg, quote = leg.avg_fill_price, benchmark_quote(leg)
    if avg is None or quote is None:
        return None
    return _unsigned_zero(bps(leg.side.sign * (avg - quote.mid), quote.mid))


def _unsigned_zero(value: Decimal) -> Decimal:
    """`value`, but a zero without its sign: a sell at the mid costs -1 x 0, which the JSON wrote "-0.00"."""
    return value.copy_abs() if value.is_zero() else value


def _ratio(numerator: Decimal, denominator: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal | None:
    if denominator <= ZERO:
        return None
    return (numerator / denominator).quantize(_RATIO, rounding=rounding)


def _priced_qty(leg: LegState) -> Decimal:
    """The leg's filled quantity whose price the broker reported, which its average (and notional) cover: a fill
    reported before its price (Alpaca) would otherwise weigh the leg's cost over shares it does not price."""
    return sum((r.filled_qty for r in leg.orders if r.notional is not None), ZERO)


def _costs(legs: Sequence[LegState]) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """The run's bps cost, its cost in half-spreads and the half-spread saved."""
    weighted_bps = notional = cost_total = half_spread_total = ZERO
    for leg in legs:
        avg, quote = leg.avg_fill_price, benchmark_quote(leg)
        if avg is None or quote is None:
            continue
        # From the fills' exact notional, not the average (a quotient to 28 digits): the figures stay exact to
        # their last digit (2/3 of a half-spread reads 0.666...667, not 0.666...665).
        mid, priced = quote.mid, _priced_qty(leg)
        paid = leg.side.sign * (leg.filled_notional - mid * priced)
        weighted_bps += paid / (mid * priced) * BPS * leg.filled_notional
        notional += leg.filled_notional
        cost_total += paid
        half_spread_total += quote.spread / _TWO * priced
    cost_bps = (
        None
        if notional == ZERO
        else _unsigned_zero((weighted_bps / notional).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))
    )
    if half_spread_total <= ZERO:
        return cost_bps, None, None
    # Not rounded: the tables show it to 3 places and its complement (the half-spread saved) to 0.1%; a figure kept
    # to 4 places would be rounded twice there (0.35451 -> 0.3545 -> 0.354 half-spreads, where it is 0.355). The
    # complement is its own quotient: 1 minus the rounded cost lost digits (1 - 1.333...3 = -0.333...3, 27 digits).
    saved = (half_spread_total - cost_total) / half_spread_total
    return cost_bps, cost_total / half_spread_total, saved


def _passive_filled(leg: LegState) -> Decimal:
    """Quantity filled by the leg's limit orders sent before escalation (a market order is never passive, even
    one sent for want of a valid quote, which is not flagged as an escalation)."""
    return sum(
        (r.filled_qty for r in leg.orders if not r.escalation and r.order_type is not OrderType.MARKET), ZERO
    )


def _fill_rate(legs: Sequence[LegState]) -> Decimal | None:
    sent = [leg for leg in legs if leg.orders and leg.qty is not None]
    requested = sum((leg.qty for leg in sent if leg.qty is not None), ZERO)
    # Rounded down: a share short of all (some quantity went to market) never reads as 1.
    return _ratio(sum((_passive_filled(leg) for leg in sent), ZERO), requested, ROUND_DOWN)


def _mean_time_to_fill(legs: Sequence[LegState]) -> float | None:
    times = [
        (leg.completed_at - leg.submitted_at).total_seconds()
        for leg in legs
        if leg.status is LegStatus.FILLED and leg.completed_at is not None and leg.submitted_at is not None
    ]
    return None if not times else sum(times) / len(times)


def summarize_quality(legs: Sequence[LegState]) -> QualitySummary:
    cost_bps, cost_half_spreads, half_spread_saved = _costs(legs)
    return QualitySummary(
        cost_bps=cost_bps,
        cost_half_spreads=cost_half_spreads,
        half_spread_saved=half_spread_saved,
        fill_rate_before_escalation=_fill_rate(legs),
        mean_time_to_fill_s=_mean_time_to_fill(legs),
    )
