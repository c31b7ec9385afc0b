"""Result values as text, shared by the terminal tables (`repeg.cli.render`) and the HTML reports
(`repeg.lab.run_report_html`): one rule per kind of value, and the caller's mark for a missing one."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from repeg.domain.plan import SkippedTrade
from repeg.report.quality import DECIMAL_CONTEXT
from repeg.report.result import LegResult

MISSING = "-"
_CENT = Decimal("0.01")
_TENTH = Decimal("0.1")
_HUNDRED = Decimal(100)


def _places(value: Decimal, digits: int) -> Decimal:
    """`value` to `digits` decimal places, rounded half-even (a format spec would round by the caller's context)."""
    return value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_EVEN, context=DECIMAL_CONTEXT)


def _percent(ratio: Decimal, unit: Decimal, rounding: str) -> Decimal:
    """`ratio` x 100 to `unit`, rounded as told, in `DECIMAL_CONTEXT`: the caller's context (its precision) would
    round the product first, or refuse the quantize."""
    return DECIMAL_CONTEXT.multiply(ratio, _HUNDRED).quantize(
        unit, rounding=rounding, context=DECIMAL_CONTEXT
    )


def qty_text(qty: Decimal | None, missing: str = MISSING) -> str:
    """A quantity without trailing zeros (12.500000000 -> 12.5)."""
    if qty is None:
        return missing
    text = f"{qty:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def price_text(price: Decimal | None, missing: str = MISSING) -> str:
    """An average or reference price, to 4 places (sub-penny fills and mids stay visible)."""
    return missing if price is None else f"{_places(price, 4):f}"


def money_text(amount: Decimal | None, missing: str = MISSING) -> str:
    return missing if amount is None else f"{_places(amount, 2):,f}"


def signed_text(value: Decimal | None, digits: int, missing: str = MISSING) -> str:
    """A cost measure with its sign (+ costs, - saves); one that rounds to zero reads +0, never -0."""
    if value is None:
        return missing
    shown = f"{_places(value, digits):+f}"
    return shown.replace("-", "+", 1) if Decimal(shown) == 0 else shown


def share_text(value: Decimal | None, missing: str = MISSING) -> str:
    """A ratio as a percentage to one place, rounded toward zero (0.646 -> 64.6%): a share short of a whole (a fill
    rate with some quantity left to escalation) never reads as 100.0%."""
    return missing if value is None else f"{_percent(value, _TENTH, ROUND_DOWN)}%"


def percent_text(value: Decimal | None, missing: str = MISSING) -> str:
    """A signed ratio that is no share of a whole (half-spread saved, which is negative when the run paid more than
    crossing) as a percentage to one place, rounded half-even: toward zero would flatter a negative figure. One that
    rounds to zero reads 0.0%, never -0.0%."""
    if value is None:
        return missing
    shown = _percent(value, _TENTH, ROUND_HALF_EVEN)
    return f"{abs(shown) if shown == 0 else shown}%"


def scale_text(scale: Decimal) -> str:
    """A buy scale as a percentage to 0.01%, rounded down: a scale short of one never reads as 100.00%."""
    return f"{_percent(scale, _CENT, ROUND_DOWN)}%"


def seconds_text(seconds: float | None, missing: str = MISSING) -> str:
    return missing if seconds is None else f"{seconds:.1f}"


def requested_text(leg: LegResult, missing: str = MISSING) -> str:
    """What the leg asked for: its quantity, or `$` and its notional for a leg never sized to a quantity."""
    if leg.requested_qty is None and leg.requested_notional is not None:
        return f"${money_text(leg.requested_notional, missing)}"
    return qty_text(leg.requested_qty, missing)


def skipped_text(trade: SkippedTrade, missing: str = MISSING) -> str:
    """What a skipped trade asked for: `$` and its notional for a notional trade, else its quantity."""
    if trade.notional is not None:
        return f"${money_text(trade.notional, missing)}"
    return qty_text(trade.qty, missing)
